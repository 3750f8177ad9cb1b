"""Does an engine's KV cache hold enough of ``ltrsched profile``'s probes to fit a profile, and how large must it be?

The probes are planned for the engine's KV cache (:func:`~ltrsched.validation.profiling.probe_plan`: every probe
fits 90% of it), so a small cache leaves few probes: ``--num-gpu-blocks 7`` ran two prefill probes and then said
"too few usable steps to fit a profile (2)", and ``--num-gpu-blocks 3`` stopped on the engine's warm-up probe,
"4 request(s) can never fit the engine's KV cache of 2 usable blocks (first: request 0 needs 5 blocks)": requests
the user never gave. :func:`check_probe_cache` counts the steps the probes would give before they run (the
simulator schedules them exactly as the engine does: ``--semantics vllm-v1``, tested equal on the emulated engine)
and, where too few, says in one line that the cache is too small and the smallest that gives enough: before the
engine starts where its cache is known then (:func:`engine_before_start`), else once it has started, before the
probes run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ltrsched.errors import UserError
from ltrsched.policies import kv_bound

#: Most KV blocks the search for the smallest cache looks at: beyond it the plan no longer grows (its largest
#: probes hold ``ProbePlan.max_tokens_in_flight`` tokens, 140,000) for any block size of at least 1 token.
MAX_SEARCH_BLOCKS = 1 << 20
#: Longest context [tokens] the search for the shortest one looks at: the plan's longest request is shorter.
MAX_SEARCH_CONTEXT = 1 << 16


def planned_steps(config, usable_blocks: int, max_model_len: int, quick: bool, repeats: int | None) -> int:
    """Usable steps (:func:`~ltrsched.validation.profiling.usable_steps`: those after the warm-up probe) the probes
    for an engine of ``config`` holding ``usable_blocks`` KV blocks (vLLM's null block not among them) and contexts
    up to ``max_model_len`` [tokens] give; 0 if a probe's request can never fit the cache (the engine refuses the
    probes)."""
    from ltrsched.policies import make_policy
    from ltrsched.policies.batching import BatchLimits
    from ltrsched.sim import SimConfig, simulate
    from ltrsched.validation.profiling import PROBE_GAP_S, probe_plan, probe_workload

    if usable_blocks < 1:
        return 0
    plan = probe_plan(config, usable_blocks, max_model_len, quick=quick, repeats=repeats)
    probes = probe_workload(plan, config.max_num_seqs, config.max_num_batched_tokens)
    total = (probes.df["prompt_tokens"] + probes.df["output_tokens"]).to_numpy()
    # the fit checks' rule (the simulator's below refuses what the engine refuses): a request holds KV for at most
    # prompt + output - 1 tokens; alone (vllm-v1: no watermark then) it may use every block; its context is
    # prompt + output
    limits = BatchLimits(num_gpu_blocks=usable_blocks, block_size=config.block_size, watermark_when_running=True)
    # (at most the context the cache holds, as the simulator takes a given one, modelling vLLM's start-up check:
    # ltrsched.sim.config.cache_short; the search for a shorter context tries longer ones on the same cache)
    max_model_len = kv_bound.usable_context(usable_blocks, config.block_size, max_model_len)
    if int(limits.most_blocks_held(total).max()) > limits.blocks_alone or int(total.max()) > max_model_len:
        return 0
    result = simulate(probes, make_policy("fcfs"), SimConfig(
        profile="a100-llama3-8b", semantics="vllm-v1", preemption="recompute", max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens, max_resident_seqs=config.max_resident_seqs,
        block_size=config.block_size, num_gpu_blocks=usable_blocks, max_model_len=max_model_len, record_steps=True))
    return int((result.steps["start"] >= PROBE_GAP_S).sum())  # (the timing does not matter: probes never overlap)


def smallest_probe_cache(config, context_at: Callable[[int], int], quick: bool, repeats: int | None,
                         low: int) -> int | None:
    """The fewest usable KV blocks, above ``low``, whose probes give enough steps to fit (None: no cache does,
    e.g. a sequence cap that leaves too few probes). ``context_at(blocks)``: the engine's context with that cache."""
    from ltrsched.validation.profiling import MIN_FIT_STEPS

    # (the steps grow with the cache: more and larger probes fit)
    return _smallest(lambda blocks: planned_steps(config, blocks, context_at(blocks), quick, repeats) >= MIN_FIT_STEPS,
                     low, MAX_SEARCH_BLOCKS)


def smallest_probe_context(config, usable_blocks: int, quick: bool, repeats: int | None, low: int) -> int | None:
    """The shortest context [tokens], above ``low``, whose probes give enough steps to fit on a cache of
    ``usable_blocks`` KV blocks (None: none up to :data:`MAX_SEARCH_CONTEXT` does)."""
    from ltrsched.validation.profiling import MIN_FIT_STEPS

    return _smallest(lambda context: planned_steps(config, usable_blocks, context, quick, repeats) >= MIN_FIT_STEPS,
                     low, MAX_SEARCH_CONTEXT)


def _smallest(enough: Callable[[int], bool], low: int, most: int) -> int | None:
    """The smallest value above ``low`` (and at least 2) for which ``enough`` holds, ``enough`` being monotone: doubling
    up to ``most``, then bisection; None where even ``most`` is not enough."""
    high = max(low + 1, 2)
    while not enough(high):
        if high >= most:
            return None
        high = min(2 * high, most)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def check_probe_cache(eng, quick: bool, repeats: int | None) -> None:
    """One-line :class:`UserError` before the probes run if the started engine ``eng``'s KV cache is too small for
    enough of them, naming its size and the smallest that works, in the option the user sized it by."""
    from ltrsched.validation.profiling import MIN_FIT_STEPS

    config = eng.config
    blocks, context = eng.num_gpu_blocks(), eng.max_model_len()
    steps = planned_steps(config, blocks - 1, context, quick, repeats)
    if steps >= MIN_FIT_STEPS:
        return
    full = _full_context(eng)
    needed = smallest_probe_cache(config, lambda b: min(full, b * config.block_size), quick, repeats, blocks - 1)
    size = f"the engine's KV cache of {blocks:,} blocks x {config.block_size} tokens (one of them vLLM's null block)"
    what = (f"{size} is too small for the profile's probes: those it holds give {steps} step(s) to fit, and a "
            f"fit needs {MIN_FIT_STEPS}")
    if needed is None:
        longer = smallest_probe_context(config, blocks - 1, quick, repeats, context)
        if longer is not None:  # (a short --max-model-len: the cache was named, with no size that helps)
            raise UserError(f"the engine's context of {context:,} tokens is too short for the profile's probes: those "
                            f"it holds give {steps} step(s) to fit, and a fit needs {MIN_FIT_STEPS}: give "
                            f"--max-model-len {longer} or more")
        raise UserError(f"{what}, which no KV cache size gives with these options: raise --max-num-seqs and "
                        "--max-num-batched-tokens, or leave out --quick")
    raise UserError(f"{what}: give {_larger(eng, needed + 1)} or more")


def _full_context(eng) -> int:
    """The engine's context without a bound from its KV cache [tokens]: the emulated profile's, ``--max-model-len``,
    or the model's (vLLM bounds it to a small cache: :func:`~ltrsched.engine.runner.engine_kwargs`)."""
    if eng.emulated:  # (its profile's, where the cache bounded it: ltrsched.validation.engines.emulated_plan)
        return getattr(eng, "full_context", None) or eng.max_model_len()
    if eng.config.max_model_len is not None:
        return eng.max_model_len()
    from ltrsched.engine.config import model_dir
    from ltrsched.engine.model_context import model_context

    return max(eng.max_model_len(), model_context(model_dir(eng.config.model))[0])


def _larger(eng, blocks: int) -> str:
    """The option that gives ``blocks`` KV blocks (vLLM's null block among them), in the unit the user gave."""
    config = eng.config
    if config.kv_cache_gib is None:
        return f"--num-gpu-blocks {blocks:,}"
    if eng.emulated:
        per_block = eng.emulated_profile.kv_bytes_per_token * config.block_size
    else:
        from ltrsched.engine.config import model_dir, pool_block_bytes

        # (as stated_kv_blocks counts them: a block holds one of vLLM's KV groups)
        per_block = pool_block_bytes(model_dir(config.model), config.dtype, config.block_size)
    gib = blocks * per_block / 2**30
    step = 10.0 ** (math.floor(math.log10(gib)) - 1)
    return f"--kv-cache-gib {math.ceil(gib / step - 1e-9) * step:.3g} ({blocks:,} blocks)"


@dataclass
class PlannedEngine:
    """An engine as :func:`check_probe_cache` sees it (its configuration, KV blocks with vLLM's null block, context
    [tokens], the emulated profile), known before it starts."""

    config: object
    blocks: int
    context: int
    emulated_profile: object = None
    full_context: int | None = None  # (the emulated profile's context before its cache's bound: Engine's)

    @property
    def emulated(self) -> bool:
        return self.emulated_profile is not None

    def num_gpu_blocks(self) -> int:
        return self.blocks

    def max_model_len(self) -> int:
        return self.context


def engine_before_start(engine: dict) -> PlannedEngine | None:
    """The engine ``engine`` (``start_engine``'s options) describes, where its KV cache and context are known before
    it starts (the emulated engine; the real one with a stated cache, ``--kv-cache-gib`` or ``--num-gpu-blocks``,
    and the context its model's config.json tells, else a one-line UserError: :mod:`ltrsched.engine.model_context`);
    None where only its start tells (a GPU's memory profiling)."""
    from ltrsched.engine.config import model_dir, stated_kv_blocks
    from ltrsched.validation.engines import emulated_plan, engine_config, expected_context

    config = engine_config(**engine)
    if engine.get("emulate_profile") is not None:
        config, profile, bound, full = emulated_plan(config, engine["emulate_profile"])
        return PlannedEngine(config, config.num_gpu_blocks, int(profile.max_model_len), profile,
                             None if bound is None else full)
    blocks, expected = stated_kv_blocks(config, model_dir(config.model)), expected_context(config)
    if blocks is None:
        return None
    return PlannedEngine(config, blocks, expected[0])
