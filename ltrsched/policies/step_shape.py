"""What a step-time profile is told about a batch: the simulator times a step with it, the engine adapter
logs it beside the measured step time (the raw material of a measured profile)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltrsched.policies.fastops import ones

#: Shortest step a step-time model may give [s], for the simulator's profiles and the emulated engine's step times
#: alike. Real engine steps take milliseconds; a step of zero (or nearly zero) seconds makes every latency 0 and
#: throughput infinite, and time would stop advancing once the clock is large (see
#: ``ltrsched.workloads.arrivals.MAX_ARRIVAL_TIME_S``).
MIN_STEP_S = 1e-6


@dataclass(slots=True)  # not frozen: one is built per simulated step, frozen __init__ is slower
class StepShape:
    """The work of one engine step, as a step-time profile needs it.

    Attributes:
        num_prefill_tokens: prompt (or recompute) tokens computed this step [tokens].
        num_prefill_seqs: sequences contributing prefill tokens [sequences].
        num_decode_seqs: sequences decoding one token this step [sequences].
        decode_context_tokens: sum over decode sequences of their context length, i.e. KV tokens read by
            decode attention, the new token included [tokens].
        prefill_attention_pairs: sum over prefill chunks of ``chunk * (computed_before + (chunk + 1) / 2)``:
            query-key pairs of causal prefill attention [token^2].
    """

    num_prefill_tokens: int = 0
    num_prefill_seqs: int = 0
    num_decode_seqs: int = 0
    decode_context_tokens: int = 0
    prefill_attention_pairs: float = 0.0

    @property
    def num_tokens(self) -> int:
        """Tokens through the non-attention layers [tokens]."""
        return self.num_prefill_tokens + self.num_decode_seqs

    @property
    def num_seqs(self) -> int:
        return self.num_prefill_seqs + self.num_decode_seqs


def decode_shape(num_seqs: int, context_tokens: int) -> StepShape:
    """The shape of a decode-only step: ``num_seqs`` members, each computing its one pending token, that held
    ``context_tokens`` KV tokens in all before the step [tokens]. Each decode reads its context and its new token,
    so the step's decode context is ``context_tokens + num_seqs``.

    The one place a decode-only step's shape is written: :func:`split_step_shape`, the simulator's fast paths
    (``ltrsched.sim.replica``: a lone decode, decode-only steps, a one-token first-token step) and the engine
    adapter's (``ltrsched.engine.scheduler``) call it. A step with prompt chunks (:func:`few_chunks_shape`, the array
    path of :func:`split_step_shape`) counts its decodes' context the same way: the batch's context less the
    chunks', plus one token per decode."""
    return StepShape(num_decode_seqs=num_seqs, decode_context_tokens=context_tokens + num_seqs)


def batch_step_shape(num_new_tokens: np.ndarray, computed_tokens: np.ndarray, known_tokens: np.ndarray) -> StepShape:
    """The shape of a step from its batch (arrays aligned with the batch).

    Args:
        num_new_tokens: tokens each member computes this step [tokens].
        computed_tokens: tokens each member had computed before the step [tokens].
        known_tokens: prompt + generated tokens of each member [tokens].

    A member is a decode when it computes the one token not yet in its KV (a 1-token last prompt chunk
    counts too); every other member is a prefill (or recompute) chunk. Each member computes
    ``1 <= num_new_tokens <= known - computed`` tokens.
    """
    return split_step_shape(num_new_tokens, computed_tokens, known_tokens - computed_tokens)


def split_step_shape(num_new_tokens: np.ndarray, computed_tokens: np.ndarray, pending_tokens: np.ndarray) -> StepShape:
    """:func:`batch_step_shape` from the members' pending tokens (``known - computed``, the KV they lack
    before the step) [tokens], arrays aligned with the batch; each member computes
    ``1 <= num_new_tokens <= pending_tokens`` tokens.

    The one implementation of the decode/chunk split, shared by the simulator (steps with several prompt
    chunks) and the engine adapter (every step). A member with one token pending computes it (it takes at
    least one): a decode. At thousands of live requests nearly every member is a decode and a few are
    prompt chunks (requests admitted this step), so the decodes are found with a few calls on the whole
    batch and the chunks are worked on alone.
    """
    n = len(num_new_tokens)
    chunks = (pending_tokens != 1).nonzero()[0]  # prompt (or recompute) chunks, in batch order
    context = int(computed_tokens.dot(ones(n)))  # KV tokens of the batch before the step
    k = len(chunks)
    if not k:  # decode-only: the common step
        return decode_shape(n, context)
    n_decode = n - k
    if k <= _FEW_CHUNKS:  # scalar arithmetic: a numpy call costs more than a few elements
        return few_chunks_shape(n, context, num_new_tokens[chunks].tolist(), computed_tokens[chunks].tolist())
    p_take = num_new_tokens[chunks]
    p_computed = computed_tokens[chunks]
    tokens, before = int(p_take.dot(ones(k))), int(p_computed.dot(ones(k)))
    pairs = float((p_take * (p_computed + (p_take + 1) * 0.5)).sum())
    # each chunk's pairs, take * computed + take * (take + 1) / 2, is an integer: every partial sum is exact
    # (below 2**53), so the scalar and the array sums are the same float
    return StepShape(num_prefill_tokens=tokens, num_prefill_seqs=k, num_decode_seqs=n_decode,
                     decode_context_tokens=context - before + n_decode, prefill_attention_pairs=pairs)


def few_chunks_shape(n: int, context: int, chunk_tokens: list[int], chunk_computed: list[int]) -> StepShape:
    """:func:`split_step_shape` of a batch of ``n`` members holding ``context`` KV tokens before the step [tokens]
    whose prompt chunks (members with other than one token pending) take ``chunk_tokens`` and had
    ``chunk_computed`` [tokens] (lists, aligned), in scalar arithmetic (a numpy call costs more than a few
    elements): for a host that has the chunks' values already (the engine adapter)."""
    tokens = before = 0
    pairs = 0.0
    for take, computed in zip(chunk_tokens, chunk_computed):
        tokens += take
        before += computed
        pairs += take * (computed + (take + 1) * 0.5)
    k = len(chunk_tokens)
    n_decode = n - k
    # each chunk's pairs, take * computed + take * (take + 1) / 2, is an integer: every partial sum is exact
    # (below 2**53), so the scalar and the array sums are the same float
    return StepShape(num_prefill_tokens=tokens, num_prefill_seqs=k, num_decode_seqs=n_decode,
                     decode_context_tokens=context - before + n_decode, prefill_attention_pairs=pairs)


#: at most this many prompt chunks are summed in scalar arithmetic (a burst's first steps have hundreds)
_FEW_CHUNKS = 16
