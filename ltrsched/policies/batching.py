"""The batch-forming rules: the one place where a ranking becomes a step's batch.

Both the simulator (``ltrsched.sim``) and the vLLM adapter (``ltrsched.engine``) call
:func:`form_batch`; neither re-implements any part of it.

Semantics (the paper's reference implementation, iteration-level like vLLM with chunked prefill):

1. All live requests (waiting, running, paused, swapped) compete in the policy's order.
2. The batch is the longest prefix of that order that fits ``max_num_seqs`` sequences and
   ``max_num_batched_tokens`` tokens. A decode costs 1 token; a prompt (or a recompute) costs its
   uncomputed tokens, chunked to the budget left (with chunked prefill) so the request at the edge of
   the prefix may run a partial chunk. Without chunked prefill a prompt that does not fit ends the prefix.
3. KV memory, in blocks of ``block_size`` tokens: a batch member needs
   ``ceil((computed + new) / block_size)`` blocks after the step; a resident request left out of the
   batch (paused) keeps its blocks. If that is more than the GPU holds, the prefix is first cut where
   its own blocks no longer fit, then the lowest-ranked residents outside the batch are preempted
   (swapped out or recomputed, the host decides) until the rest fits.
4. Watermark: when the batch admits a request without KV on the GPU (waiting or swapped), at least
   ``watermark_blocks`` blocks must stay free, as vLLM keeps them to avoid thrashing. With
   ``watermark_when_running`` (vLLM V1's rule, ``KVCacheManager.allocate_slots(has_scheduled_reqs=...)``) an
   admission keeps them free only when another request holds KV on the GPU as it is admitted: a resident the
   step keeps (running or paused), or a member admitted before it; a lone admission may fill the cache.

Two options express what vLLM V1's scheduler forces on a plug-in that reuses its ``schedule()`` (the
engine adapter, ``ltrsched.engine``), so the simulator can model the engine exactly:

5. ``resident_first``: vLLM serves its running queue before it admits waiting requests, so the token
   budget goes to the batch's resident members first (in rank order), then to the admitted ones (in rank
   order). Membership is still the rank-order prefix of rule 2, but the chunk cut at the budget edge falls
   on the last member in that engine order, and a member left with no budget drops out of the batch.
6. ``max_resident_seqs``: vLLM caps the requests holding KV on the GPU (running + paused), not only the
   batch. Beyond the cap the lowest-ranked residents outside the batch are preempted.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ltrsched.errors import UserError
from ltrsched.policies.fastops import count_nonzero, ones
from ltrsched.policies.limit_rules import first, not_positive, resident_cap


@dataclass(frozen=True)
class BatchLimits:
    """Per-step limits.

    Attributes:
        max_num_batched_tokens: token budget of one step [tokens] (paper: 768 with chunked prefill).
        max_num_seqs: sequence cap of one step [sequences] (paper: 256).
        num_gpu_blocks: KV-cache capacity [blocks].
        block_size: tokens per KV block [tokens].
        watermark_blocks: blocks kept free when admitting a request without KV on the GPU [blocks]. vLLM V1
            keeps ``int(watermark x num_blocks)``, its null block counted: ``int(watermark x (num_gpu_blocks + 1))``.
        chunked_prefill: split prompts across steps to fill the token budget.
        resident_first: give the token budget to resident batch members before admitted ones (rule 5;
            vLLM V1's running-queue-first loop).
        max_resident_seqs: most requests with KV on the GPU after the step [sequences] (rule 6; vLLM V1
            caps its running queue, paused requests included, at ``max_num_seqs``); None: no cap.
        watermark_when_running: rule 4 as vLLM V1 applies it: the ``watermark_blocks`` stay free only for an
            admission made while another request holds KV on the GPU (a resident kept, or a member admitted
            before it, residents first); False (the paper's): for every admission.
    """

    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    num_gpu_blocks: int = 1 << 30
    block_size: int = 16
    watermark_blocks: int = 0
    chunked_prefill: bool = True
    resident_first: bool = False
    max_resident_seqs: int | None = None
    watermark_when_running: bool = False

    def __post_init__(self) -> None:
        reason = first(*(not_positive(name, getattr(self, name))
                         for name in ("max_num_batched_tokens", "max_num_seqs", "num_gpu_blocks", "block_size")))
        if reason:
            raise ValueError(reason)
        # (vLLM V1's int(watermark x (blocks + 1)) can be every block: a lone admission may still use them all)
        top = self.num_gpu_blocks + 1 if self.watermark_when_running else self.num_gpu_blocks
        if self.watermark_blocks < 0 or self.watermark_blocks >= top:
            raise ValueError(f"watermark_blocks must be in [0, num_gpu_blocks{']' if self.watermark_when_running else ')'}, "
                             f"got {self.watermark_blocks}")
        if reason := resident_cap(self.max_resident_seqs, self.max_num_seqs):
            raise ValueError(reason)

    def blocks_for(self, tokens: np.ndarray | int) -> np.ndarray | int:
        """KV blocks that hold ``tokens`` tokens."""
        return -(-np.asarray(tokens) // self.block_size) if isinstance(tokens, np.ndarray) else -(-tokens // self.block_size)

    def blocks_total(self, tokens: np.ndarray | list[int]) -> int:
        """KV blocks that requests holding ``tokens`` computed tokens each hold in all [blocks]: ``blocks_for`` summed.
        The hosts' count of what finishes, preemptions and swaps free or move (simulator and engine adapter alike). A
        list (a step's few finishes) is summed in Python integers: numpy calls cost more on a few values."""
        bs = self.block_size
        if isinstance(tokens, list):
            return sum([-(-c // bs) for c in tokens])
        return int((-(-tokens // bs)).sum())

    def most_blocks_held(self, total_tokens: np.ndarray) -> np.ndarray:
        """The most KV blocks a request of ``total_tokens`` (prompt + output) tokens ever holds: those of
        ``total_tokens - 1`` tokens, as its last sampled token is never computed (vLLM serves a request of
        k x block_size + 1 tokens in k blocks)."""
        return self.blocks_for(total_tokens - 1)

    @property
    def blocks_alone(self) -> int:
        """The most KV blocks a request admitted alone may use [blocks]: every block under ``watermark_when_running``
        (vLLM V1 keeps the watermark free only beside another request on the GPU, rule 4), else all but the
        watermark's. A request needing more can never run (the fit checks before a run, simulator and engine)."""
        return self.num_gpu_blocks - (0 if self.watermark_when_running else self.watermark_blocks)


def vllm_watermark_blocks(watermark: float, usable_blocks: int) -> int:
    """vLLM V1's watermark [blocks] for a cache of ``usable_blocks`` blocks (its null block left out, as
    :class:`BatchLimits` counts them): ``int(watermark x num_blocks)`` of vLLM's ``KVCacheManager``, whose block count
    holds the null block too. The simulator's ``semantics="vllm-v1"`` takes it (``ltrsched.sim.simulate.setup_run``);
    the engine adapter reads vLLM's own ``watermark_blocks`` (``ltrsched.engine.scheduler``), which this must equal."""
    return int(watermark * (usable_blocks + 1))


@dataclass(slots=True)  # not frozen: one is built per step, and a frozen __init__ costs ~4x more; read-only by convention
class BatchPlan:
    """The outcome of one step's batch formation. Positions index the arrays given to :func:`form_batch`.

    Attributes:
        batch: positions of the requests that run this step, in rank order.
        num_new_tokens: tokens each batch member computes this step (aligned with ``batch``).
        evict: positions of resident requests to preempt before the step, lowest-ranked first.
        blocks_in_use: GPU KV blocks held after the step (batch members + residents kept) [blocks].
        ranks: positions in ``order`` of the batch members, ascending; None when the batch is the prefix
            ``order[:len(batch)]`` (always, unless ``resident_first`` dropped a member).
        pending_tokens: the batch members' ``pending_tokens`` before the step (aligned with ``batch``) [tokens],
            or None. Values form_batch read anyway, so a host need not gather them again.
        computed_tokens: the batch members' ``computed_tokens`` before the step (aligned) [tokens], or None.
        one_token_each: every member has exactly one token pending (a decode, or a prompt with one token
            left), so each takes 1; False when unknown.
        evict_blocks: the running total of the KV blocks the ``evict`` requests hold on the GPU
            (``ceil(computed_tokens / block_size)`` each, cumulated in ``evict`` order) [blocks], or None when
            there are none; form_batch counted them to choose the evictees, so a host need not again.
        all_resident: every member's KV was on the GPU before the step (nothing admitted, so nothing to swap
            in); False when unknown.
        evict_for_cap: how many of ``evict`` the resident-slot cap (rule 6, ``max_resident_seqs``) forced beyond
            those the KV blocks needed [sequences]: more KV would not have spared them (0 when none were).
    """

    batch: np.ndarray
    num_new_tokens: np.ndarray
    evict: np.ndarray
    blocks_in_use: int
    ranks: np.ndarray | None = None
    pending_tokens: np.ndarray | None = None
    computed_tokens: np.ndarray | None = None
    one_token_each: bool = False
    evict_blocks: np.ndarray | None = None
    all_resident: bool = False
    evict_for_cap: int = 0

    @property
    def num_batched_tokens(self) -> int:
        return int(self.num_new_tokens.sum())


_EMPTY = np.zeros(0, dtype=np.int64)

#: Consecutive steps without progress after which a host stops a run with an error instead of spinning: the
#: simulator's steps with an empty batch (``ltrsched.sim.replica``), the engine replay's steps that computed no token
#: (``ltrsched.engine.replay``). A legal step runs at least the best-ranked live request, so even one such step is a
#: bug; the margin costs nothing.
MAX_STALLED_STEPS = 1000

#: Preemptions per request after which a host (simulator, engine replay) stops a run with an error: a policy
#: that keeps reordering the requests holding KV under memory pressure can evict them faster than they finish
#: (with recompute each eviction throws their progress away), a thrash that may still creep forward. Real
#: runs preempt a request a few times.
MAX_PREEMPTIONS_PER_REQUEST = 1000

#: The no-progress window: a run whose recompute preemptions (each throws a request's computed KV away) reach
#: ``NO_PROGRESS_MIN_RECOMPUTES + NO_PROGRESS_RECOMPUTES_PER_LIVE * live requests`` with no output token sampled
#: by any request meanwhile is a livelock: its requests keep being evicted before they finish the prefill they
#: restarted (a sampled token is never lost, under recompute too, so any token is progress). Measured (with the
#: window off): runs that finish, however badly they thrash, went at most 3,457 recomputes without a token (7
#: prompts of 400 tokens, 30 KV blocks, a 16-token budget, starve=1,quantum=1: 5,728 preemptions in all), ~1 per
#: live request on ShareGPT bursts of 200-4,000 requests at starve=1,quantum=1, 25 in the golden grid; the livelocks
#: found sampled no token for the rest of the run (``ThrashGuard``).
NO_PROGRESS_MIN_RECOMPUTES = 10_000
NO_PROGRESS_RECOMPUTES_PER_LIVE = 10

#: The waste rule, for a thrash that creeps (it samples a token now and then, so the no-progress window never
#: ends, and it may run to :data:`MAX_PREEMPTIONS_PER_REQUEST`: minutes to hours). A recompute preemption throws the
#: request's computed KV away (its prompt and the output so far are prefilled again): the run stops once the
#: tokens so discarded pass :data:`WASTE_MIN_TOKENS` (below it a thrash costs seconds, and a small run's ratios say
#: little: 12 requests in a random order redrawn every 4 steps finish at 79x their tokens, 226 per output token),
#: :data:`WASTE_MIN_WORKLOADS` times the workload's own tokens (prompt + output, every request) and
#: :data:`WASTE_PER_OUTPUT_TOKEN` per output token sampled so far. Measured with the rule off, at the end of runs
#: that finish: the golden grid at most 4.0x (under 1 M tokens); the starvation thrash at 4x Poisson overload
#: (BENCHMARKS.md: ShareGPT resampled to 10k, 20k, 40k requests, ltr:tau=0.6,starve=200,quantum=10 at 40 req/s)
#: 17.2x, 20.6x, 22.3x and 22, 27, 29 per output token; the README's 4,000-request burst with starve=200 13.2x and
#: 17. A creep (100 requests of 8k-32k output tokens, a burst, the same policy) passed 10x at 6,963 preemptions
#: with 54 per output token (283 at 40,000): it stops there, where it ran to 100,001 preemptions (step 658,680).
WASTE_MIN_TOKENS = 10_000_000
WASTE_MIN_WORKLOADS = 10
WASTE_PER_OUTPUT_TOKEN = 50
_NEVER = 1 << 62  # (the waste rule's check with no workload tokens given)


class ThrashError(UserError):
    """A run stopped by :class:`ThrashGuard`: its one-line ``preemption thrash`` message (the CLI prints ``error:``
    and it, exit code 2; a sweep or capacity search names the run before it)."""


@contextmanager
def thrash_named(what: str):
    """A :class:`ThrashError` raised inside becomes one naming the run ``what`` (e.g. ``run 1a2b (fcfs on ...)``):
    the guard's own line names none, so among a sweep's or a validation's runs the user could not tell which had
    stopped."""
    try:
        yield
    except ThrashError as exc:
        raise ThrashError(f"{what}: {exc}") from None


#: The remedy for preemptions the resident-slot cap forced (rule 6): the options that set it, simulator and engine.
RAISE_RESIDENT_CAP = ("raise the cap on requests holding KV (--max-resident-seqs, or --max-num-seqs where that is not "
                      "given: max_resident_seqs, vLLM's max_num_seqs)")
_MORE_KV = "give the run more KV blocks or swap space"


def thrash_message(num_preemptions: int, num_requests: int, step: int, policy: object, without_progress: int = 0,
                   num_live: int = 0, waste: tuple[int, int, int] | None = None, for_cap: int = 0) -> str:
    """The one-line error for a run past :data:`MAX_PREEMPTIONS_PER_REQUEST`, or, with ``without_progress``
    (recompute preemptions with no token sampled, among ``num_live`` live requests), past the no-progress window,
    or, with ``waste`` (tokens discarded by recompute, the workload's tokens, output tokens sampled), past the waste
    rule. A policy with starvation prevention is named as the cause, with its remedy (the run-end warning's words:
    :func:`ltrsched.policies.starvation_thrash.starvation_cause`), which a run stopped here never prints.
    ``for_cap``: of the preemptions, those the resident-slot cap forced beyond what the KV blocks needed
    (:attr:`BatchPlan.evict_for_cap`, summed): where there are some, the line counts them and the rest (KV memory's)
    and gives the remedy of the larger share first; where all were, more KV is no remedy and the line says so."""
    stalled = (f", the last {without_progress:,} recomputes of {num_live:,} live requests without a single output "
               "token" if without_progress else "")
    if waste is not None:
        discarded, workload_tokens, sampled = waste
        per_token = discarded / max(sampled, 1)
        stalled = (f", {discarded:,} computed tokens thrown away to recompute ({discarded / workload_tokens:,.0f}x the "
                   f"workload's {workload_tokens:,} prompt and output tokens, {per_token:,.0f} for each of the "
                   f"{sampled:,} output tokens sampled)")
    from ltrsched.policies.starvation_thrash import starvation_cause

    for_blocks = num_preemptions - for_cap
    if for_cap <= 0:
        fix, counts = _MORE_KV, ""
    elif for_blocks <= 0:
        fix = f"{RAISE_RESIDENT_CAP}: more KV blocks or swap space would not help"
        counts = f"all {num_preemptions:,} preemptions forced by the cap on requests holding KV, none by KV memory; "
    else:
        fix = (f"{RAISE_RESIDENT_CAP}, or {_MORE_KV}" if for_cap >= for_blocks else
               f"{_MORE_KV}, or {RAISE_RESIDENT_CAP}")
        counts = f"{for_cap:,} preemptions forced by the cap on requests holding KV, {for_blocks:,} by KV memory; "
    cause = starvation_cause(policy)
    remedy = (f"its {cause}, or {fix}" if cause is not None else
              f"the policy {type(policy).__name__} keeps evicting requests before they finish (rank the requests "
              f"holding KV more stably, or {fix})")
    return (f"preemption thrash: {num_preemptions:,} preemptions of {num_requests:,} requests by step {step:,}"
            f"{stalled}; {counts}{remedy}")


@dataclass(slots=True)
class ThrashGuard:
    """The preemption-thrash rules, one per run (replica), fed by the host on its preemption path only (a step
    without preemption costs nothing). Stops a run with a one-line ``preemption thrash`` :class:`ThrashError`:

    - past :data:`MAX_PREEMPTIONS_PER_REQUEST` preemptions per request of the workload (``num_requests``);
    - or when no output token was sampled by any request over a window of recompute preemptions (swaps keep
      the work; a swap-only run cannot livelock) of :data:`NO_PROGRESS_MIN_RECOMPUTES` +
      :data:`NO_PROGRESS_RECOMPUTES_PER_LIVE` per live request (counted when the window starts). The windows
      follow one another: the sampled-token total is read once per window (O(requests)), at its end;
    - or when the computed tokens recompute preemptions threw away pass :data:`WASTE_MIN_TOKENS`,
      :data:`WASTE_MIN_WORKLOADS` times the workload's tokens (``num_tokens``) and :data:`WASTE_PER_OUTPUT_TOKEN`
      per output token sampled so far (a thrash that creeps). The sampled-token total is read once the first two
      bounds are passed, then once per further ``num_tokens`` thrown away.

    Attributes:
        num_requests: the workload's requests (the first rule's scale; a cluster's replica: those sent to it so far,
            :meth:`add`).
        num_tokens: the workload's prompt + output tokens, every request [tokens] (the waste rule's scale; 0: the
            waste rule is off until :meth:`add` gives some).
        num_preemptions: preemptions so far (swaps and recomputes).
        num_recomputes: recompute preemptions so far.
        discarded_tokens: computed tokens whose KV recompute preemptions threw away so far [tokens].
        num_for_cap: preemptions so far that the resident-slot cap forced beyond what the KV blocks needed (the
            error's cause and remedy, :func:`thrash_message`).
    """

    num_requests: int
    num_tokens: int = 0
    num_preemptions: int = 0
    num_recomputes: int = 0
    discarded_tokens: int = 0
    num_for_cap: int = 0
    _window_end: int = 0  # num_recomputes at which the current window ends (0: none started)
    _window: int = 0  # its length [recomputes]
    _sampled: int = -1  # the sampled-token total when it started
    _waste_check: int = 0  # discarded_tokens at which the waste rule reads the sampled tokens next
    _waste_looked: bool = False  # whether it has read them once (its first check is behind it)

    def __post_init__(self) -> None:
        self._waste_check = self._first_waste_check()

    def _first_waste_check(self) -> int:
        return max(WASTE_MIN_WORKLOADS * self.num_tokens, WASTE_MIN_TOKENS) if self.num_tokens > 0 else _NEVER

    def add(self, requests: int, tokens: int) -> None:
        """Scale the rules by ``requests`` more requests of ``tokens`` prompt + output tokens in all, for a host whose
        requests come during the run (a cluster's replica, as its router sends them): the waste rule's first check
        moves with the tokens until it has looked once (then each next check is one workload's tokens further)."""
        self.num_requests += requests
        self.num_tokens += tokens
        if not self._waste_looked:
            self._waste_check = self._first_waste_check()

    def preempted(self, count: int, recomputed: int, step: int, policy: object, num_live: int,
                  sampled_tokens: Callable[[], int], discarded: int = 0, for_cap: int = 0) -> None:
        """``count`` requests were preempted at step ``step``, ``recomputed`` of them by recompute, which threw away
        the KV of ``discarded`` computed tokens, with ``num_live`` live requests; ``for_cap`` of them the
        resident-slot cap forced (:attr:`BatchPlan.evict_for_cap`). ``sampled_tokens()``: the output
        tokens sampled so far by every request of the run (finished ones included), read only where a window ends
        or the waste rule looks. Raises :class:`ThrashError` per the rules."""
        self.num_preemptions += count
        self.num_for_cap += for_cap
        if self.num_preemptions > MAX_PREEMPTIONS_PER_REQUEST * self.num_requests:
            raise ThrashError(thrash_message(self.num_preemptions, self.num_requests, step, policy,
                                             for_cap=self.num_for_cap))
        if not recomputed:
            return
        self.num_recomputes += recomputed
        self.discarded_tokens += discarded
        if self.discarded_tokens >= self._waste_check:
            self._check_waste(step, policy, sampled_tokens)
        if self.num_recomputes < self._window_end:
            return
        sampled = sampled_tokens()
        if sampled == self._sampled:
            raise ThrashError(thrash_message(self.num_preemptions, self.num_requests, step, policy,
                                             self.num_recomputes - (self._window_end - self._window), num_live,
                                             for_cap=self.num_for_cap))
        self._sampled = sampled
        self._window = NO_PROGRESS_MIN_RECOMPUTES + NO_PROGRESS_RECOMPUTES_PER_LIVE * num_live
        self._window_end = self.num_recomputes + self._window

    def _check_waste(self, step: int, policy: object, sampled_tokens: Callable[[], int]) -> None:
        """The waste rule, where ``discarded_tokens`` reached its next check (the first: the larger of the bounds in
        tokens and in workloads; then one more workload's tokens each)."""
        sampled = sampled_tokens()
        self._waste_looked = True
        if self.discarded_tokens > WASTE_PER_OUTPUT_TOKEN * sampled:
            raise ThrashError(thrash_message(self.num_preemptions, self.num_requests, step, policy,
                                             waste=(self.discarded_tokens, self.num_tokens, sampled),
                                             for_cap=self.num_for_cap))
        self._waste_check = self.discarded_tokens + self.num_tokens


def form_batch(
    order: np.ndarray,
    pending_tokens: np.ndarray,
    computed_tokens: np.ndarray,
    resident: np.ndarray,
    limits: BatchLimits,
    resident_blocks: int | None = None,
    live: np.ndarray | None = None,
) -> BatchPlan:
    """Form one step's batch from a competition order.

    Args:
        order: positions of the live requests, best first (a permutation, as ``Policy.rank`` returns), or,
            with ``live``, their positions in ``live``.
        pending_tokens: tokens each request would compute if scheduled: its uncomputed prompt (or
            recompute) tokens, or 1 for a decode [tokens]; >= 1.
        computed_tokens: tokens whose KV the request has (on GPU or host) [tokens].
        resident: whether the request's KV is on the GPU now (running or paused); only live requests can be.
        limits: the step's limits.
        resident_blocks: blocks the resident requests hold now, if the host tracks it (saves a pass):
            ``ceil(computed_tokens / block_size)`` summed over them.
        live: the live requests' positions in the arrays, if ``order`` indexes it (the ranking as a policy
            returns it). The same as passing ``live[order]``, but only the head of the order that can join the
            batch is gathered unless preemption needs the rest (a gather of every live request costs ~2 us).

    Returns:
        The :class:`BatchPlan`. It is empty only if ``order`` is empty.

    Raises:
        ValueError: if the best-ranked request alone can never fit the KV cache (hosts reject such
        requests before a run, so this signals a bug rather than a slow step).
    """
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
    if limits.resident_first and k and take[-1] < wanted[k - 1] and resident[head[k - 1]]:
        # 5. the chunk cut moves to the engine order (residents first, then the admitted, each in rank order). The
        # members before the cut member want fewer tokens than the budget in all, so when the cut member comes last
        # in the engine order too (it is admitted, or every member is resident) the cut stays where it is; only a
        # resident cut member behind an admitted one moves it
        is_resident = resident[head[:k]]
        if not is_resident.all():
            ranks, take = _resident_first_tokens(np.arange(k), wanted[:k], is_resident, budget)
            tokens = int(take.sum())
            if len(ranks) == k:  # nobody dropped out: still the prefix
                ranks = None
    batch = head[:k] if ranks is None else head[ranks]

    # --- 3./4./6. KV blocks and resident slots ---------------------------------------------------------
    cap = limits.num_gpu_blocks
    wm = limits.watermark_blocks
    b_computed = computed_tokens[batch]
    b_resident = resident[batch]
    num_resident = int(count_nonzero(b_resident))
    added, held_by_batch = _blocks_added_and_held(b_computed, take, b_resident, bs,
                                                  decode_only=tokens == len(batch) == num_resident)
    after = resident_blocks + added
    slots_over = 0
    if limits.max_resident_seqs is not None:
        num_residents = int(count_nonzero(resident[order if live is None else live]))
        slots_over = num_residents - num_resident + len(batch) - limits.max_resident_seqs
    # fast path: everything fits, under the watermark, or under the capacity when the batch admits no request
    # (the watermark only guards admissions), or, with watermark_when_running, admits one request alone (no resident
    # anywhere): then nothing is cut or preempted
    if slots_over <= 0 and (after <= cap - wm or (after <= cap and (
            num_resident == len(batch) or _lone_admission(limits, batch, num_resident, order, live, resident)))):
        return BatchPlan(batch, np.asarray(take, dtype=np.int64), _EMPTY, after, ranks,
                         wanted[:len(batch)] if ranks is None else wanted[ranks], b_computed,
                         one_each and ranks is None, None, num_resident == len(batch))
    # what the batch's residents hold now (counted with the blocks added, unless the batch only decodes), and what
    # the batch holds after the step (``after`` less the others')
    if held_by_batch is None:
        held_by_batch = int(((b_computed + (bs - 1)) // bs).dot(b_resident))
    used_by_batch = after - resident_blocks + held_by_batch
    target = cap - wm if num_resident < len(batch) else cap  # the watermark guards admissions
    if wm and limits.watermark_when_running and len(batch) == 1 and not num_resident:
        # one admission: it keeps the watermark free only beside residents it leaves on the GPU; if preemption
        # must take them all (below), it fits the capacity, as the cut allows
        if _lone_admission(limits, batch, num_resident, order, live, resident):
            target = cap
    if used_by_batch > target:
        # 3. cut the prefix where its own blocks no longer fit (admitting a request without KV on the GPU must
        # leave the watermark free); with resident_first a cut can move the chunk edge, so repeat. (The blocks
        # held grow along the prefix and the limit shrinks once it admits: a prefix that fits as a whole, the
        # test above, fits at every member.)
        need = (b_computed + take + (bs - 1)) // bs  # blocks each member holds after the step
        while True:
            need_cum = np.cumsum(need)
            admits_new = np.maximum.accumulate(~resident[batch]) if len(batch) else np.zeros(0, dtype=bool)
            limit = np.where(admits_new, cap - wm, cap)
            if limits.watermark_when_running and len(batch) and not resident[batch[0]]:
                limit[0] = cap  # a first member admitted alone: the watermark only if a resident stays (below)
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
        if target < cap and limits.watermark_when_running and len(batch) == 1 and \
                _lone_admission(limits, batch, 0, order, live, resident):
            target = cap
        b_resident = resident[batch]
        num_resident = int(count_nonzero(b_resident))
        held_by_batch = int(((computed_tokens[batch] + (bs - 1)) // bs).dot(b_resident))

    # 3./6. preempt the lowest-ranked residents outside the batch until the rest fits. What they hold is what
    # every resident holds less the batch's residents' share, so nothing is looked at when nobody has to go;
    # else they are found from the order's tail, only as far as the evictions reach
    total_held = resident_blocks - held_by_batch
    deficit = used_by_batch + total_held - target
    count = 0  # residents that must go for the resident-slot cap
    if limits.max_resident_seqs is not None:
        count = num_residents - num_resident + len(batch) - limits.max_resident_seqs
    all_resident = num_resident == len(batch)
    if deficit <= 0 and count <= 0:
        return BatchPlan(batch, np.asarray(take, dtype=np.int64), _EMPTY, used_by_batch + total_held, ranks,
                         all_resident=all_resident)
    others, held_cum = _lowest_residents(order, live, resident, computed_tokens, bs,
                                         len(batch) if ranks is None else ranks, deficit, count)
    n_for_blocks = int(held_cum.searchsorted(deficit, side="left")) + 1 if deficit > 0 else 0
    n_evict = max(n_for_blocks, count)
    evict = others[:n_evict]
    evict_blocks = held_cum[:n_evict]
    total_held -= int(evict_blocks[-1])
    return BatchPlan(batch, np.asarray(take, dtype=np.int64), evict, used_by_batch + total_held, ranks,
                     evict_blocks=evict_blocks, all_resident=all_resident, evict_for_cap=n_evict - n_for_blocks)


def _lone_admission(limits: BatchLimits, batch: np.ndarray, num_resident: int, order, live, resident) -> bool:
    """Whether, under ``watermark_when_running`` (vLLM V1), the batch admits one request while no request holds KV
    on the GPU (no resident, in the batch or out of it), so the watermark does not guard that admission."""
    if not (limits.watermark_when_running and limits.watermark_blocks and len(batch) == 1 and not num_resident):
        return False
    return not count_nonzero(resident[order if live is None else live])


#: Positions of the order looked at first, from its tail, for residents to preempt (then twice as many each time)
TAIL_CHUNK = 256


def _lowest_residents(order, live, resident, computed_tokens, bs: int, members, deficit: int,
                      count: int) -> tuple[np.ndarray, np.ndarray]:
    """The residents outside the batch, lowest-ranked first, and the running total of the KV blocks they hold,
    as far as preemption needs them: until the total reaches ``deficit`` blocks and there are ``count`` of them
    (all of them if it never does). Scans ``order`` (positions in ``live`` if given, else in the arrays) from
    its end in chunks of :data:`TAIL_CHUNK`, doubling. ``members``: the batch's positions in the order, an int
    ``k`` for ``0..k-1`` or an ascending array. The same prefix as one pass over every live request gives."""
    parts, cums = [], []
    prefix = isinstance(members, int)
    bound = members if prefix else (int(members[-1]) + 1 if len(members) else 0)  # members are below it
    hi = len(order)
    held = found = 0
    size = TAIL_CHUNK
    while hi > 0:
        lo = max(hi - size, 0)
        rows = order[lo:hi] if live is None else live[order[lo:hi]]
        mask = resident[rows]
        if lo < bound:  # batch members among them: not candidates
            if prefix:
                mask[: min(bound, hi) - lo] = False
            else:
                mask[members[(members >= lo) & (members < hi)] - lo] = False
        cand = rows[mask][::-1]
        if len(cand):
            cum = ((computed_tokens[cand] + (bs - 1)) // bs).cumsum()  # (methods: np.* calls cost more here)
            if held:
                cum += held
            parts.append(cand)
            cums.append(cum)
            held = int(cum[-1])
            found += len(cand)
            if held >= deficit and found >= count:
                break
        hi = lo
        size *= 2
    if len(parts) == 1:
        return parts[0], cums[0]
    if not parts:
        return _EMPTY, _EMPTY
    return np.concatenate(parts), np.concatenate(cums)


def _blocks_added(b_computed: np.ndarray, take: np.ndarray, b_resident: np.ndarray, bs: int,
                  decode_only: bool) -> int:
    """KV blocks a batch adds to what the GPU holds: each member holds ``ceil((computed + take) / bs)`` blocks
    after the step, of which a resident one holds ``ceil(computed / bs)`` already. ``decode_only``: every
    member is resident and takes one token, so it adds a block exactly when its blocks are full."""
    return _blocks_added_and_held(b_computed, take, b_resident, bs, decode_only)[0]


def _blocks_added_and_held(b_computed: np.ndarray, take: np.ndarray, b_resident: np.ndarray, bs: int,
                           decode_only: bool) -> tuple[int, int | None]:
    """:func:`_blocks_added` [blocks], and the blocks the batch's resident members hold before the step
    (``ceil(computed / bs)`` summed over them) [blocks], which that count subtracts, or None when ``decode_only``
    (not counted then). The preemption path needs the second; counting it again cost four numpy calls on every
    step past the fast path."""
    if decode_only:
        if bs & (bs - 1) == 0:  # a power of two (vLLM's block sizes are): a bit mask costs half a modulo
            return len(b_computed) - int(count_nonzero(b_computed & _low_bits(bs))), None
        return int(count_nonzero(b_computed % bs == 0)), None
    rounded = b_computed + (bs - 1)
    # (an integer dot with ones, as for the head's tokens, not sum(): a reduction's first call in a step costs ~30 us
    # on the CPU engine's cold caches, a dot's right after form_batch's own a few)
    after = int(((rounded + take) // bs).dot(ones(len(take))))
    held = int((rounded // bs).dot(b_resident))
    return after - held, held


_LOW_BITS: dict[int, np.ndarray] = {}


def _low_bits(bs: int) -> np.ndarray:
    """``bs - 1`` as a 0-d int64 array: an array operand spares numpy converting a Python int every call
    (~0.25 us of a ~0.6 us operation); the result is the same."""
    mask = _LOW_BITS.get(bs)
    if mask is None:
        mask = _LOW_BITS[bs] = np.array(bs - 1, dtype=np.int64)
    return mask


def _resident_first_tokens(
    ranks: np.ndarray, wanted: np.ndarray, is_resident: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rule 5: the budget goes to the members ``ranks`` (ascending, with their ``wanted`` tokens) residents
    first, then the others, each group in rank order. Returns the members that get tokens and their tokens."""
    engine_order = np.concatenate((np.flatnonzero(is_resident), np.flatnonzero(~is_resident)))
    w = wanted[engine_order]
    take = np.empty_like(wanted)
    take[engine_order] = np.minimum(w, budget - (np.cumsum(w) - w))
    kept = take > 0
    if kept.all():
        return ranks, take
    return ranks[kept], take[kept]


def _form_single(order, pending_tokens, computed_tokens, resident, limits, resident_blocks) -> BatchPlan | None:
    """:func:`form_batch` for a single live request that fits without preemption, in scalar arithmetic
    (a burst's last requests often run alone for thousands of steps; numpy calls cost ~10x more here).
    None when it does not fit: the general path then cuts or raises."""
    i = order[0]
    take = int(pending_tokens[i])
    if take > limits.max_num_batched_tokens:
        if not limits.chunked_prefill:
            return None
        take = limits.max_num_batched_tokens
    bs = limits.block_size
    computed = int(computed_tokens[i])
    held = -(-computed // bs) if resident[i] else 0
    after = resident_blocks + (computed + take + bs - 1) // bs - held
    # (alone, it keeps no watermark free under vLLM V1's rule: nothing else holds KV on the GPU)
    if after > limits.num_gpu_blocks - (0 if limits.watermark_when_running else limits.watermark_blocks):
        return None
    return BatchPlan(order, np.array([take], dtype=np.int64), _EMPTY, after)
