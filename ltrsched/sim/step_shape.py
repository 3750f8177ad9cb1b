"""What a step-time profile is told about a batch."""

from __future__ import annotations

from dataclasses import dataclass


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
