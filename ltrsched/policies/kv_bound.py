"""The context a KV cache bounds, written once (pure arithmetic).

vLLM 0.32 refuses to start on a KV cache that holds no request of its context (``check_enough_kv_cache_memory``), so
an engine whose context is not given takes the model's bounded by what its cache holds. Where every layer attends
fully (one KV group) one request of ``context`` tokens takes ``ceil(context / block_size)`` blocks and the pool holds
vLLM's null block besides, so a pool of ``blocks`` blocks holds a context of ``(blocks - 1) x block_size`` tokens.

Both engines (``ltrsched.engine.config.default_context_bound``: the real engine where its model's layers all attend
fully, the emulated engine always) and the simulator (``ltrsched.sim.simulate.setup_run``, whose ``num_gpu_blocks``
leaves the null block out: :func:`usable_blocks_bound`) take it from here. Models with sliding-window layers count
their blocks per KV group (``ltrsched.engine.kv_layers``), which the simulator does not model.

The words of the lines about it are written here once too: :func:`short_reason` refuses a context given beyond what a
cache holds (vLLM does not start on it; both engines and the simulator refuse it, each counting its blocks its own
way: :func:`usable_short`), :func:`bounded_source` and :func:`bounded_fix` name a cache that bounds the context in the
line refusing a longer request; each takes the entry point's names (``limit_rules.option_name``, ``field_name``).

Units: contexts and block sizes in tokens, pools in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltrsched.policies import limit_rules

#: How a request takes the blocks of a one-group pool, in words (a :attr:`KVBound.held`).
NULL_BLOCK_HELD = "one of them vLLM's null block"
#: The same, of a pool counted without vLLM's null block (the simulator's ``num_gpu_blocks``: :func:`usable_short`).
NULL_BLOCK_LEFT_OUT = "vLLM's null block not among them"


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


def usable_context(usable_blocks: int, block_size: int, context: int) -> int:
    """``context`` [tokens] at most what ``usable_blocks`` blocks of ``block_size`` tokens hold, counted without
    vLLM's null block (:func:`usable_blocks_bound`): the context to give the simulator for such a cache."""
    bound = usable_blocks_bound(usable_blocks, block_size, context)
    return context if bound is None else bound.context


def usable_short(usable_blocks: int, block_size: int, context: int) -> KVBound | None:
    """:func:`usable_blocks_bound` counted as the simulator counts its cache, without vLLM's null block:
    :attr:`KVBound.blocks` is ``usable_blocks`` and :attr:`KVBound.needed` the blocks one request of ``context``
    tokens takes (``ceil(context / block_size)``), so that a refusal (:func:`short_reason`) names the simulator's own
    ``num_gpu_blocks``; None where the blocks hold a request of ``context`` tokens."""
    bound = usable_blocks_bound(usable_blocks, block_size, context)
    return None if bound is None else KVBound(bound.context, usable_blocks, NULL_BLOCK_LEFT_OUT, bound.needed - 1)


def blocks_given(blocks: int, name: limit_rules.Name = limit_rules.option_name) -> str:
    """A cache of ``blocks`` KV blocks given by ``num_gpu_blocks``, in the words of :func:`short_reason`."""
    return f"{name('num_gpu_blocks')} {blocks}"


def profile_cache(profile: str, utilization: float, name: limit_rules.Name = limit_rules.option_name) -> str:
    """A cache sized from the GPU memory of ``profile`` at ``gpu_memory_utilization`` ``utilization`` [fraction], in
    the words of :func:`short_reason`."""
    return f"the KV cache of profile {profile!r} (its GPU memory at {name('gpu_memory_utilization')} {utilization:g})"


def more_blocks(needed: int, name: limit_rules.Name = limit_rules.option_name, utilization: bool = False) -> str:
    """What :func:`short_reason` says to do: give ``needed`` blocks, or (``utilization``: the cache was sized from a
    profile's GPU memory) a larger ``gpu_memory_utilization``."""
    fix = f"give {name('num_gpu_blocks')} {needed} or more"
    return fix + (f", or a larger {name('gpu_memory_utilization')}" if utilization else "")


def short_reason(bound: KVBound, max_model_len: int, block_size: int, given: str, fix: str,
                 name: limit_rules.Name = limit_rules.option_name) -> str:
    """The one-line refusal of a KV cache that holds no request of the ``max_model_len`` [tokens] given, which vLLM
    refuses at its start (``check_enough_kv_cache_memory``): both engines' (``ltrsched.engine.config.kv_short_reason``)
    and the simulator's (``ltrsched.sim.config``), written once. ``bound``: the blocks the cache holds, those one
    request of the context takes and the longest context it holds, counted as its user counts them (with vLLM's null
    block for an engine, without it for the simulator: :func:`usable_short`); ``block_size`` [tokens]; ``given``: the
    cache in words (:func:`blocks_given`, :func:`profile_cache`, an engine's ``kv_cache_gib``); ``fix``: what to change
    (:func:`more_blocks`, ...); ``name``: what the user calls a setting (:mod:`ltrsched.policies.limit_rules`)."""
    context_name = name("max_model_len")
    # (the other fix, a shorter context, where one is taken: a sliding window's blocks alone may fill a small cache)
    shorter = (f", or give {context_name} {bound.context} or less" if bound.context >= limit_rules.MIN_MODEL_LEN
               else "")
    return (f"{context_name} {max_model_len} needs {bound.needed} KV blocks of {block_size} tokens ({bound.held}), "
            f"and {given} holds {bound.blocks}, which vLLM refuses once started: {fix}{shorter}")


def bounded_source(bound: KVBound, block_size: int, name: limit_rules.Name = limit_rules.option_name,
                   kv_cache_gib: float | None = None, sized_from: tuple[str, float] | None = None) -> str:
    """Where an engine's context comes from when its KV cache bounds it (``bound``), in the words of the line refusing
    a longer request, the real and the emulated engine's, from the command line and (``name``:
    ``limit_rules.field_name``) from Python: the cache of ``num_gpu_blocks``, of ``kv_cache_gib`` [GiB] where that gave
    it, or of a profile's GPU memory (``sized_from``: the profile's name and ``gpu_memory_utilization``)."""
    if sized_from is not None:
        profile, utilization = sized_from
        stated = f"profile {profile!r} at {name('gpu_memory_utilization')} {utilization:g}, {bound.blocks} blocks"
    elif kv_cache_gib is None:
        stated = f"{name('num_gpu_blocks')} {bound.blocks}"
    else:
        stated = f"{name('kv_cache_gib')} {kv_cache_gib:g}, {bound.blocks} blocks"
    return f"the KV cache of {stated} ({bound.held}) x {block_size} tokens"


def bounded_fix(name: limit_rules.Name = limit_rules.option_name, kv_cache_gib: float | None = None,
                sized_blocks: int | None = None) -> str:
    """What to do about a request longer than the context a KV cache bounds (:func:`bounded_source`):
    ``sized_blocks``: the blocks a profile's GPU memory sized (None: the options stated the cache)."""
    if sized_blocks is not None:
        return (f"give {name('num_gpu_blocks')} (more than {sized_blocks}) or a larger "
                f"{name('gpu_memory_utilization')}, or leave them out")
    return (f"give more {name('num_gpu_blocks')}, or leave them out" if kv_cache_gib is None
            else f"give a larger {name('kv_cache_gib')}, or leave them out")


def watermark_held(blocks: int, watermark_blocks: int, rules: str = "the paper's batch rules") -> str:
    """Why a request that a KV cache of ``blocks`` blocks would hold is refused all the same: ``rules`` (the paper's,
    the simulator's default) keep ``watermark_blocks`` [blocks] of them free at every admission, a lone request's
    too, where vLLM V1's rules let a request admitted alone take them (``BatchLimits.blocks_alone``); the words of
    the simulator's refusal (``ltrsched.sim.simulate``), before its fix."""
    return (f"{watermark_blocks} of the cache's {blocks} blocks {'is' if watermark_blocks == 1 else 'are'} held back "
            f"as the watermark under {rules}, which vLLM V1's rules let a request admitted alone use")


def longer_context_fix(name: limit_rules.Name = limit_rules.option_name) -> str:
    """What to do about a request longer than a context not bounded by the KV cache (a profile's or the one given)."""
    return f"raise {name('max_model_len')} if the model takes longer contexts, or leave them out"
