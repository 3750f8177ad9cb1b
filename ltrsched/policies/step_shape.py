"""What a step-time profile is told about a batch: the simulator times a step with it, the engine adapter
logs it beside the measured step time (the raw material of a measured profile)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def batch_step_shape(num_new_tokens: np.ndarray, computed_tokens: np.ndarray, known_tokens: np.ndarray) -> StepShape:
    """The shape of a step from its batch (arrays aligned with the batch).

    Args:
        num_new_tokens: tokens each member computes this step [tokens].
        computed_tokens: tokens each member had computed before the step [tokens].
        known_tokens: prompt + generated tokens of each member [tokens].

    A member is a decode when it computes the one token not yet in its KV (a 1-token last prompt chunk
    counts too); every other member is a prefill (or recompute) chunk.
    """
    n = len(num_new_tokens)
    if int(num_new_tokens.sum()) == n and int((known_tokens - computed_tokens).max(initial=1)) == 1:
        # decode-only (every member computes the one token not yet in its KV): the common step
        return StepShape(num_decode_seqs=n, decode_context_tokens=int(computed_tokens.sum()) + n)
    is_decode = (num_new_tokens == 1) & (computed_tokens + 1 == known_tokens)
    n_decode = int(is_decode.sum())
    prefill = ~is_decode
    p_take = num_new_tokens[prefill]
    return StepShape(
        num_prefill_tokens=int(p_take.sum()),
        num_prefill_seqs=len(p_take),
        num_decode_seqs=n_decode,
        decode_context_tokens=int(computed_tokens[is_decode].sum()) + n_decode,
        prefill_attention_pairs=float((p_take * (computed_tokens[prefill] + (p_take + 1) * 0.5)).sum()),
    )
