"""Simulation settings (the engine configuration being simulated)."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, fields
from typing import Any, Callable

from ltrsched import arguments
from ltrsched.errors import ArgumentValueError
from ltrsched.policies import kv_bound, limit_rules
from ltrsched.strict_json import shown

PREEMPTION_MODES = ("swap", "recompute")
#: The watermark of "paper" semantics by default: the fraction of KV blocks kept free when admitting requests.
PAPER_WATERMARK = 0.01
#: Batch-forming semantics: the paper's reference rules, or what the vLLM adapter realises on every release line it
#: supports (0.26 and 0.32+: ``ltrsched.engine.vllm_compat.SUPPORTED_LINES``; rules 5 and 6 of
#: ``ltrsched.policies.batching``, recompute preemption).
SEMANTICS = ("paper", "vllm-v1")
#: :class:`SimConfig`'s settings that count something [tokens, sequences, blocks]: an integer (a numpy one too, kept as
#: Python's), or None where that is the field's default; never a float or a bool.
INTEGER_FIELDS = ("max_num_batched_tokens", "max_num_seqs", "block_size", "num_gpu_blocks", "max_model_len",
                  "max_resident_seqs")
#: The settings that are numbers [GiB, s, fractions] (None where that is the default).
NUMBER_FIELDS = ("gpu_memory_utilization", "watermark", "swap_space_gib", "stop_time")
#: The settings that are true or false.
FLAG_FIELDS = ("chunked_prefill", "record_steps")


@dataclass(frozen=True)
class Naming:
    """How the user of one interface names :class:`SimConfig`'s settings: ``names`` maps a field to what they
    typed (``--max-num-seqs`` for ``simulate``, ``'max_num_seqs'`` in a sweep file; a field not in it keeps its
    Python name), ``assign`` writes a setting of a name to a value as they would (``--preemption recompute``,
    ``preemption = "recompute"``, ``preemption='recompute'``)."""

    names: dict[str, str]
    assign: Callable[[str, str], str]

    def name(self, field: str) -> str:
        return self.names.get(field, field)

    def has(self, field: str) -> bool:
        """Whether this user can set ``field`` at all (a sweep file has no GPU memory utilization)."""
        return field in self.names

    def setting(self, field: str, value: str) -> str:
        return self.assign(self.name(field), value)


def option_naming(params) -> Naming:
    """The naming of a click command whose ``params`` (``click.Command.params``) include options named after
    :class:`SimConfig`'s fields (``--max-num-seqs`` sets ``max_num_seqs``): each field its long option."""
    names = {}
    for p in params:
        longs = [o for o in getattr(p, "opts", ()) if o.startswith("--")]
        if longs and p.name in SimConfig.__dataclass_fields__:
            names[p.name] = longs[0]
    return Naming(names, lambda name, value: f"{name} {value}")


def key_naming(keys) -> Naming:
    """The naming of a settings file (a sweep's TOML or JSON) whose ``keys`` are :class:`SimConfig`'s field names:
    each quoted, as that file's own errors quote keys."""
    return Naming({k: repr(k) for k in keys if k in SimConfig.__dataclass_fields__},
                  lambda name, value: f"{name.strip(chr(39))} = {shown(value)}")  # (unquoted, as written)


class ConfigError(ValueError):
    """A :class:`SimConfig` refused. ``fields``: the settings at fault; ``message(naming)``: the one-line reason,
    naming them as a :class:`Naming` says (``str()`` names them as the Python API does). A command reports
    :meth:`render` with its own naming, so that its user reads what they typed."""

    def __init__(self, fields: tuple[str, ...], message: Callable[[Naming], str]):
        self.fields = fields
        self.message = message
        super().__init__(message(PYTHON_NAMING))

    def render(self, naming: Naming) -> str:
        return self.message(naming)

    def __reduce__(self):  # (a worker process's error crosses to the parent as its Python-named text)
        return ValueError, (str(self),)


class ConfigArgumentError(ConfigError, ArgumentValueError):
    """A :class:`ConfigError` that a Python entry point (``simulate()``, ``simulate_cluster()``) raises for its
    arguments: an :class:`~ltrsched.errors.ArgumentValueError` too (a UserError and a ValueError), as ``emulate()``
    raises its own, with the same message; ``except ConfigError`` catches it as before."""

    @classmethod
    def of(cls, exc: ConfigError) -> "ConfigArgumentError":
        return cls(exc.fields, exc.message)


@dataclass(frozen=True)
class SimConfig:
    """One simulated replica's configuration.

    Attributes:
        profile: built-in profile name, a path to a profile JSON file, or a profile object.
        max_num_batched_tokens: token budget per step [tokens] (paper: 768 with chunked prefill).
        max_num_seqs: sequence cap per step [sequences] (paper: 256).
        block_size: tokens per KV block [tokens].
        num_gpu_blocks: KV capacity [blocks]; None derives it from the profile's GPU memory.
        gpu_memory_utilization: fraction of GPU memory vLLM may use (for the derived capacity).
        watermark: fraction of KV blocks kept free when admitting requests without KV on the GPU. None (the
            default): 0.01 under "paper" semantics, 0 under "vllm-v1" (the adapter's engine: vLLM V1's default,
            ``EngineConfig.watermark``). "paper" keeps ``int(watermark x num_gpu_blocks)`` blocks free for every
            admission; "vllm-v1" keeps ``int(watermark x (num_gpu_blocks + 1))`` (vLLM counts its null block), and
            only for an admission beside another request on the GPU (``BatchLimits.watermark_when_running``).
        preemption: "swap" (KV to host memory over the host link) or "recompute" (drop KV, prefill again). None
            (the default): "swap" under "paper" semantics, "recompute" under "vllm-v1" (the only one it takes), as the
            CLI's ``--preemption`` defaults.
        swap_space_gib: host memory for swapped KV per GPU [GiB]; when full, preemption falls back to
            recompute (as vLLM does).
        chunked_prefill: split prompts across steps to fill the token budget.
        max_model_len: longest prompt + output a request may have [tokens]; None: the profile's, bounded by what the
            KV cache holds (``num_gpu_blocks x block_size``, the null block left out), as vLLM bounds an engine's
            (``ltrsched.sim.simulate.cache_bound``).
        record_steps: keep a per-step trace in the result.
        stop_time: end the run at this simulated time [s] (None: when every request has finished);
            unfinished requests keep NaN finish times (NaN, not null: ``is_nan()`` finds them; NaN first-token
            times too where they had none) and are left out of the latency summaries.
        max_resident_seqs: most requests holding KV on the GPU (running + paused) [sequences]; beyond it the
            lowest-ranked paused requests are preempted. None: no cap ("paper"), ``max_num_seqs``
            ("vllm-v1": vLLM's running-queue cap, unless the engine ran with a larger one).
        semantics: "paper" (all live requests compete; the chunk cut falls on the last-ranked member) or
            "vllm-v1" (exactly what the engine adapter makes vLLM (0.26, 0.32+) do: resident members get the
            token budget first, at most ``max_num_seqs`` requests hold KV, preemption by recompute; and what vLLM
            refuses to start with is refused: a ``max_num_batched_tokens`` below that resident cap,
            :func:`ltrsched.policies.limit_rules.engine_token_budget`).
    """

    profile: Any = "a100-llama3-8b"
    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    block_size: int = 16
    num_gpu_blocks: int | None = None
    gpu_memory_utilization: float = 0.9
    watermark: float | None = None
    preemption: str | None = None
    swap_space_gib: float = 4.0
    chunked_prefill: bool = True
    max_model_len: int | None = None
    record_steps: bool = False
    stop_time: float | None = None
    semantics: str = "paper"
    max_resident_seqs: int | None = None

    def __post_init__(self) -> None:
        def refuse(fields: tuple[str, ...], message: Callable[[Naming], str]) -> None:
            raise ConfigError(fields, message)

        def check(fields: tuple[str, ...], rule: Callable[[limit_rules.Name], str | None]) -> None:
            """Refuse ``fields`` if a rule of :mod:`ltrsched.policies.limit_rules` (given the naming) finds a reason."""
            if rule(limit_rules.field_name) is not None:
                refuse(fields, lambda naming: rule(naming.name))

        if self.watermark is None:  # (vllm-v1 took the paper's 0.01: 1% of the blocks kept free, the engine none)
            object.__setattr__(self, "watermark", PAPER_WATERMARK if self.semantics != "vllm-v1" else 0.0)
        if self.preemption is None:  # (SimConfig(semantics="vllm-v1") was refused: swap, which vllm-v1 does not take)
            object.__setattr__(self, "preemption", "recompute" if self.semantics == "vllm-v1" else "swap")

        if not isinstance(self.profile, (str, os.PathLike)) and not callable(getattr(self.profile, "step_time", None)):
            # (None or a number failed at the run's start: "'NoneType' object has no attribute 'num_gpu_blocks'")
            refuse(("profile",), lambda n: f"{n.name('profile')} must be a built-in profile name, a path to a profile "
                                           f"JSON file or a profile object (with step_time), got "
                                           f"{arguments.shown(self.profile)}")
        if self.preemption not in PREEMPTION_MODES:
            refuse(("preemption",), lambda n: f"{n.name('preemption')} must be one of "
                                              f"{', '.join(PREEMPTION_MODES)}, got {self.preemption!r}")
        for name in INTEGER_FIELDS:  # (7.5 ran with a 7.5-token budget, True as 1; "8" or None a TypeError)
            value = getattr(self, name)
            if value is None and SimConfig.__dataclass_fields__[name].default is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                refuse((name,), lambda n, name=name, value=value: f"{n.name(name)} must be an integer, got {value!r}")
            # a numpy integer as Python's: the simulator's arithmetic on it was fixed-width (a uint16 block size
            # overflowed the block's bytes), and describe() gave a value json.dumps refuses
            object.__setattr__(self, name, int(value))
        for name in NUMBER_FIELDS:  # ("0.1" was a TypeError at the range check, True taken as 1.0)
            value = getattr(self, name)
            if value is None and SimConfig.__dataclass_fields__[name].default is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                refuse((name,), lambda n, name=name, value=value: f"{n.name(name)} must be a number, got {value!r}")
            if not isinstance(value, (int, float)):  # (a numpy float32: describe() gave what json.dumps refuses)
                object.__setattr__(self, name, float(value))
        for name in FLAG_FIELDS:  # (any value was taken as true or false)
            value = getattr(self, name)
            if not (isinstance(value, bool) or type(value).__name__ in ("bool", "bool_")):  # (numpy's bool too)
                refuse((name,), lambda n, name=name, value=value: f"{n.name(name)} must be true or false, got {value!r}")
            object.__setattr__(self, name, bool(value))
        for name in ("max_num_batched_tokens", "max_num_seqs", "block_size", "max_model_len", "num_gpu_blocks"):
            check((name,), lambda name_of, name=name: limit_rules.not_positive(name, getattr(self, name), name_of))
        check(("gpu_memory_utilization",), lambda name_of: limit_rules.memory_fraction(self.gpu_memory_utilization,
                                                                                       name_of))
        check(("watermark",), lambda name_of: limit_rules.watermark_fraction(self.watermark, name_of))
        check(("stop_time",), lambda name_of: limit_rules.not_positive("stop_time", self.stop_time, name_of))
        if self.semantics not in SEMANTICS:
            refuse(("semantics",), lambda n: f"{n.name('semantics')} must be one of {', '.join(SEMANTICS)}, "
                                             f"got {self.semantics!r}")
        if self.semantics == "vllm-v1" and self.preemption != "recompute":
            refuse(("semantics", "preemption"),
                   lambda n: f"{n.setting('semantics', 'vllm-v1')} models vLLM V1, which preempts by recompute, "
                             f"not {n.setting('preemption', self.preemption)}: set "
                             f"{n.setting('preemption', 'recompute')}")
        check(("max_resident_seqs", "max_num_seqs"),
              lambda name_of: limit_rules.resident_cap(self.max_resident_seqs, self.max_num_seqs, name_of))
        if self.semantics == "vllm-v1":  # (vLLM does not start with such a budget; the simulator ran it)
            budget = lambda name_of: limit_rules.engine_token_budget(  # noqa: E731
                self.max_num_batched_tokens, self.max_num_seqs, self.max_resident_seqs, name_of)
            if budget(limit_rules.field_name) is not None:
                refuse(("max_num_batched_tokens", "max_resident_seqs" if self.max_resident_seqs else "max_num_seqs",
                        "semantics"),
                       lambda n: f"under {n.setting('semantics', 'vllm-v1')}, {budget(n.name)}")
        if not self.swap_space_gib >= 0:  # (NaN too: it passed, and the host's size was int(NaN), a ValueError)
            refuse(("swap_space_gib",), lambda n: f"{n.name('swap_space_gib')} must be >= 0, got {self.swap_space_gib}")
        if self.num_gpu_blocks is not None:  # (a cache sized from the profile: checked as a run sets up, cache_short)
            short = cache_short(self, self.num_gpu_blocks)
            if short is not None:
                raise short

    def describe(self) -> dict[str, Any]:
        """The settings as a dict of plain values, the profile by its name (a result's ``meta["config"]``)."""
        # (not dataclasses.asdict: it deep-copied a profile object only to drop it, and one holding a lock or an open
        # file failed the run at its very end: "cannot pickle '_thread.lock' object")
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if not isinstance(self.profile, str):
            d["profile"] = getattr(self.profile, "name", type(self.profile).__name__)
        return d


def cache_short(config: SimConfig, usable_blocks: int, profile: str | None = None) -> ConfigError | None:
    """The :class:`ConfigError` refusing ``config`` where its ``max_model_len`` is given and its KV cache of
    ``usable_blocks`` blocks of ``block_size`` tokens (vLLM's null block not among them: ``num_gpu_blocks``, or what
    the GPU memory of ``profile`` leaves, named so, where that is None) holds no request of that many tokens; else None.
    vLLM refuses to start on such a cache (``check_enough_kv_cache_memory``), both engines refuse it
    (``ltrsched.engine.config.kv_short_reason``), and the simulator, which models vLLM, does too, in the same words
    (:func:`ltrsched.policies.kv_bound.short_reason`). It ran them: ``--num-gpu-blocks 35 --max-model-len 8192``
    (16-token blocks) served a request of 561 tokens. A context not given is bounded by the cache instead
    (``ltrsched.sim.simulate.cache_bound``)."""
    if config.max_model_len is None:
        return None
    bound = kv_bound.usable_short(usable_blocks, config.block_size, config.max_model_len)
    if bound is None:
        return None

    def message(naming: Naming) -> str:
        if profile is None:
            given, fix = kv_bound.blocks_given(usable_blocks, naming.name), kv_bound.more_blocks(bound.needed,
                                                                                                naming.name)
        elif naming.has("num_gpu_blocks") and naming.has("gpu_memory_utilization"):
            given = kv_bound.profile_cache(profile, config.gpu_memory_utilization, naming.name)
            fix = kv_bound.more_blocks(bound.needed, naming.name, utilization=True)
        else:  # (a sweep file or capacity run sets neither the blocks nor the utilization)
            given = (f"the KV cache of profile {profile!r} (the {config.gpu_memory_utilization:.0%} of its GPU memory "
                     "the engine may use)")
            fix = "use a profile with more GPU memory"
        return kv_bound.short_reason(bound, config.max_model_len, config.block_size, given, fix, naming.name)

    return ConfigError(("max_model_len", "num_gpu_blocks" if profile is None else "gpu_memory_utilization"), message)


#: The Python API's naming: the field names, as ``SimConfig(field=value)`` takes them (every field its own).
PYTHON_NAMING = Naming({f: f for f in SimConfig.__dataclass_fields__}, lambda name, value: f"{name}={value!r}")
