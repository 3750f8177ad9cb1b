"""The context a KV cache bounds, written once (pure arithmetic).

vLLM 0.32 refuses to start on a KV cache that holds no request of its context (``check_enough_kv_cache_memory``), so
an engine whose context is not given takes the model's bounded by what its cache holds. Where every layer attends
fully (one KV group) one request of ``context`` tokens takes ``ceil(context / block_size)`` blocks and the pool holds
vLLM's null block besides, so a pool of ``blocks`` blocks holds a context of ``(blocks - 1) x block_size`` tokens.

Both engines (``ltrsched.engine.config.default_context_bound``: the real engine where its model's layers all attend
fully, the emulated engine always) and the simulator (``ltrsched.sim.simulate.setup_run``, whose ``num_gpu_blocks``
leaves the null block out: :func:`usable_blocks_bound`) take it from here. Models with sliding-window layers count
their blocks per KV group (``ltrsched.engine.kv_layers``), which the simulator does not model.

Units: contexts and block sizes in tokens, pools in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How a request takes the blocks of a one-group pool, in words (a :attr:`KVBound.held`).
NULL_BLOCK_HELD = "one of them vLLM's null block"


@dataclass(frozen=True)
class KVBound:
    """The context a KV cache bounds (vLLM refuses a longer one at its start).

    Attributes:
        context: the longest context [tokens] one request may have.
        blocks: the blocks of vLLM's pool the cache holds (its null block among them; a block holds ``block_size``
            tokens of one of its KV groups).
        held: how a request takes its blocks, in words (the bound's reason).
        needed: the blocks of that pool one request of the context asked for takes, vLLM's null block added: the
            fewest the cache must hold for vLLM to start (of the layouts it may plan, the one that bounds).
    """

    context: int
    blocks: int
    held: str
    needed: int


def full_attention_bound(blocks: int, block_size: int, context: int) -> KVBound | None:
    """The bound ``blocks`` KV blocks of ``block_size`` tokens (vLLM's null block among them) put on a context of
    ``context`` tokens where every layer attends fully (one KV group: the emulated engine's, the simulator's, and a
    config.json without its sizes): one request takes ``ceil(context / block_size)`` blocks and the null block (vLLM
    0.32's ``check_enough_kv_cache_memory``), so the longest context is ``(blocks - 1) x block_size`` [tokens]; None
    where the blocks hold a request of ``context`` tokens."""
    bound = max(0, blocks - 1) * block_size
    if bound >= context:
        return None
    return KVBound(bound, blocks, NULL_BLOCK_HELD, -(-context // block_size) + 1)


def usable_blocks_bound(usable_blocks: int, block_size: int, context: int) -> KVBound | None:
    """:func:`full_attention_bound` for a cache counted without vLLM's null block, as the simulator and
    ``BatchLimits`` count it: ``usable_blocks`` [blocks] hold a context of ``usable_blocks x block_size`` [tokens]
    (the engine that ``validate`` pairs with it holds one block more). :attr:`KVBound.blocks` and
    :attr:`KVBound.needed` still count the null block (the engine's pool)."""
    return full_attention_bound(usable_blocks + 1, block_size, context)
