"""The configuration rules of a replica's limits, written once.

Four entry points check the same settings: :class:`~ltrsched.policies.batching.BatchLimits`, the simulator's
``SimConfig`` (``ltrsched.sim.config``), the engine's ``EngineConfig`` (``ltrsched.engine.config``) and the engine
commands' options (``ltrsched.validation.engines.engine_config``); a sweep file's keys
(``ltrsched.experiments.commands``) and the simulator's KV sizing (``ltrsched.sim.kv_capacity``) call some. The
simulator's and the engine's checks of a workload's requests against the context share :func:`beyond_context` and
:func:`extra_tokens_named`. Each rule here is a function of the values and
``name`` (a setting's field name -> what that entry point's user calls it: the field itself in Python,
:func:`option_name`'s ``--max-num-seqs`` on a command line) that returns the one-line reason the values are refused,
or None. The caller raises its own error type (ValueError, the simulator's ``ConfigError``, ``UserError``).

Units: counts of tokens, sequences, blocks and GPUs are integers; sizes in GiB; fractions in [0, 1].
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: A setting's field name -> the name its user gives it.
Name = Callable[[str], str]

#: The longest context an engine serves [tokens]: a simulator profile's limit (``ltrsched.sim.profiles.io``), 16.8M.
MAX_MODEL_LEN = 1 << 24
#: The shortest context an engine serves [tokens]: a prompt token and an output token.
MIN_MODEL_LEN = 2

#: The largest KV cache an engine is given by size [GiB] (1 PiB, more than any machine holds).
MAX_KV_CACHE_GIB = 1 << 20


def field_name(field: str) -> str:
    """The Python API's name of a setting: its field name (``max_num_seqs``)."""
    return field


def option_name(field: str) -> str:
    """A command line's name of a setting: its long option (``max_num_seqs`` -> ``--max-num-seqs``)."""
    return "--" + field.replace("_", "-")


#: The engine's upper bounds: field -> (most, unit, why). ``why`` takes the entry point's :data:`Name`. vLLM takes
#: any integer for these, and a huge one failed late, deep inside it, or never ended: 1e23's digits as the token
#: budget were taken, and the emulated engine's five-request replay had not ended after a minute; as the
#: tensor-parallel size they failed only on a GPU machine, inside vLLM.
ENGINE_MAXIMA: dict[str, tuple[int, str, Callable[[Name], str]]] = {
    # vLLM sizes its per-step buffers by the budget and runs a step of the whole budget to profile its memory
    "max_num_batched_tokens": (MAX_MODEL_LEN, "tokens", lambda n: f"the longest {n('max_model_len')}; vLLM sizes "
                                                                  "its per-step buffers by it"),
    # vLLM's model runner keeps a row of max_model_len token ids per sequence it may hold (65,536 rows of an
    # 8,192-token context: 2 GiB of host memory); its own default is 256 to 1,024
    "max_num_seqs": (1 << 16, "sequences", lambda n: f"vLLM's model runner keeps a row of {n('max_model_len')} "
                                                     "token ids per sequence"),
    "max_resident_seqs": (1 << 16, "sequences", lambda n: f"vLLM's model runner keeps a row of {n('max_model_len')} "
                                                          "token ids per sequence"),
    # vLLM starts a worker process per GPU of the tensor-parallel group (a node holds 8 to 16)
    "tensor_parallel_size": (1 << 10, "GPUs", lambda n: "vLLM starts a worker process per GPU of the group"),
    "block_size": (MAX_MODEL_LEN, "tokens", lambda n: f"the longest {n('max_model_len')}: a larger block holds no "
                                                      "more of a request"),
    "max_tokens": (MAX_MODEL_LEN, "tokens", lambda n: f"the longest {n('max_model_len')}"),
}


def not_positive(field: str, value, name: Name = field_name) -> str | None:
    """A count or size that must be above 0 (None: not set, allowed); NaN is refused."""
    if value is not None and not value > 0:
        return f"{name(field)} must be positive, got {value}"
    return None


def at_most(field: str, value, most: int, unit: str, why: str, name: Name = field_name) -> str | None:
    """``value`` (None: not set) above ``most`` [``unit``]; ``why``: the reason, in words."""
    if value is not None and value > most:
        return f"{name(field)} must be at most {most:,} {unit} ({why}), got {value}"
    return None


def engine_maximum(field: str, value, name: Name = field_name) -> str | None:
    """``value`` above the engine's bound for ``field`` (:data:`ENGINE_MAXIMA`)."""
    most, unit, why = ENGINE_MAXIMA[field]
    return at_most(field, value, most, unit, why(name), name)


def memory_fraction(value, name: Name = field_name) -> str | None:
    """``gpu_memory_utilization``: the fraction of GPU memory vLLM may use, in (0, 1]."""
    if not 0 < value <= 1:  # (NaN too)
        return f"{name('gpu_memory_utilization')} must be in (0, 1], got {value}"
    return None


def watermark_fraction(value, name: Name = field_name) -> str | None:
    """``watermark``: the fraction of KV blocks kept free when admitting a request, in [0, 1)."""
    if not 0 <= value < 1:  # (NaN too)
        return f"{name('watermark')} must be in [0, 1), got {value}"
    return None


def resident_cap(max_resident_seqs, max_num_seqs, name: Name = field_name) -> str | None:
    """The cap on requests holding KV [sequences] (None: none) must cover a step's batch (``max_num_seqs``)."""
    if max_resident_seqs is not None and max_resident_seqs < max_num_seqs:
        return (f"{name('max_resident_seqs')} ({max_resident_seqs}) must be >= {name('max_num_seqs')} "
                f"({max_num_seqs})")
    return None


def engine_blocks(num_gpu_blocks, name: Name = field_name) -> str | None:
    """An engine's KV blocks (None: sized by the engine) count vLLM's null block, so at least 2. (The simulator's
    and :class:`BatchLimits`'s leave the null block out: 1 is a usable cache there.)"""
    if num_gpu_blocks is not None and num_gpu_blocks < 2:
        return f"{name('num_gpu_blocks')} must be >= 2 (one is vLLM's null block), got {num_gpu_blocks}"
    return None


def engine_token_budget(max_num_batched_tokens, max_num_seqs, max_resident_seqs,
                        name: Name = field_name) -> str | None:
    """vLLM's SchedulerConfig refuses a step's token budget [tokens] below its ``max_num_seqs`` (the adapter's
    ``max_resident_seqs`` where given, else ``max_num_seqs``) [sequences], with or without chunked prefill
    (vLLM 0.32's ``SchedulerConfig.verify_max_model_len``: ``max_num_batched_tokens < max_num_seqs`` raises
    unconditionally; its other check, a budget below ``max_model_len``, only without chunked prefill, which the
    adapter never turns off). The engine's ``EngineConfig`` and options check it, and ``SimConfig`` under
    ``semantics="vllm-v1"`` (whose resident cap is vLLM's ``max_num_seqs``), so the simulator refuses what vLLM
    would not start."""
    resident = max_resident_seqs or max_num_seqs
    if max_num_batched_tokens < resident:
        return (f"{name('max_num_batched_tokens')} ({max_num_batched_tokens}) must be >= "
                f"{name('max_resident_seqs' if max_resident_seqs else 'max_num_seqs')} ({resident}), as vLLM requires")
    return None


def engine_model_len(max_model_len, name: Name = field_name) -> str | None:
    """An engine's context [tokens] (None: the model's): a prompt token and an output token at least, at most
    :data:`MAX_MODEL_LEN`."""
    if max_model_len is not None and not MIN_MODEL_LEN <= max_model_len <= MAX_MODEL_LEN:
        return f"{name('max_model_len')} must be in {MIN_MODEL_LEN}..{MAX_MODEL_LEN:,} tokens, got {max_model_len}"
    return None


def kv_cache_size(kv_cache_gib, name: Name = field_name) -> str | None:
    """An engine's KV cache by size [GiB] (None: not given): positive and finite, at most :data:`MAX_KV_CACHE_GIB`."""
    if kv_cache_gib is None:
        return None
    if not (math.isfinite(kv_cache_gib) and kv_cache_gib > 0):
        return f"{name('kv_cache_gib')} must be a positive size in GiB, got {kv_cache_gib}"
    return at_most("kv_cache_gib", kv_cache_gib, MAX_KV_CACHE_GIB, "GiB", "1 PiB, more than any machine holds", name)


def beyond_context(prompt_tokens: np.ndarray, output_tokens, max_model_len: int,
                   extra_output_tokens: int = 0) -> np.ndarray:
    """The indices of the requests whose context, ``prompt_tokens + output_tokens + extra_output_tokens`` [tokens],
    exceeds ``max_model_len`` [tokens] (at most 2**62). ``output_tokens``: an array, or one count for every request
    (an output cap). ``extra_output_tokens``: what a policy adds to every output (PO's length estimate, generated in
    the same request, so vLLM stops a request whose context they pass at ``max_model_len``: the engine counts them;
    the simulator does not, ``ltrsched.sim.simulate._check_fits`` says why).

    Compared without adding the counts: their int64 sum wraps around (prompt and output of 2**62 each passed as
    -2**63 tokens long)."""
    headroom = int(max_model_len) - int(extra_output_tokens)  # (Python ints: exact)
    if headroom < 0:
        return np.arange(len(prompt_tokens))
    return np.flatnonzero(prompt_tokens > headroom - output_tokens)  # (in [-2**63 + 1, 2**62]: no wrap)


def extra_tokens_named(extra_output_tokens: int, extra_from: str) -> str:
    """How a refusal names the tokens a policy adds to a request's count: ``"15 of them policy po's extra output
    tokens"`` (``extra_from``: who adds them, e.g. ``"policy po"``)."""
    return f"{extra_output_tokens} of them {extra_from}'s extra output tokens"


def first(*reasons: str | None) -> str | None:
    """The first reason given (a check's order is the order of its rules), or None."""
    return next((r for r in reasons if r is not None), None)
