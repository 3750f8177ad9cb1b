"""Shared test fixtures: a hand-computable step-time profile and small workloads.

Before anything else, every cache the suite (or a command it starts) could write or read is pointed at
a fresh temporary directory: a cache left by an earlier run can hide a missing install step (vLLM's
model-inspection cache once hid a missing ``einops``), or serve stale results.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

#: Environment variables naming cache (or config) directories, each pointed at a fresh directory.
CACHE_VARIABLES = ("LTRSCHED_CACHE", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                   "HF_HOME", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "NUMBA_CACHE_DIR",
                   "MPLCONFIGDIR")
FRESH_CACHES = Path(tempfile.mkdtemp(prefix="ltrsched-test-caches-"))
for _name in CACHE_VARIABLES:
    (FRESH_CACHES / _name.lower()).mkdir()
    os.environ[_name] = str(FRESH_CACHES / _name.lower())


#: The suite's torch (and every command it starts) computes on one thread. The README's test command runs two
#: pytest workers on two cores: each worker's torch took both cores' threads, and an OpenMP thread that waits for
#: its partner on the busy other core spins through every small op of a tiny model. Measured 2026-12-06 on the
#: 2-core VM with another job on the second core: tests/test_probe.py took 574 s with torch's default 2 threads
#: and 8 s with one (one test: 123 s against 0.7 s). The vLLM engine's own starts pin their threads themselves.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

#: No plain progress lines (ltrsched.progress): a run of the suite's may take over their 10 s on a loaded machine, and
#: its tests read stderr line by line. tests/test_progress.py sets them back on.
os.environ.setdefault("LTRSCHED_PROGRESS_EVERY_S", "0")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(FRESH_CACHES, ignore_errors=True)


from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run: a failure reproduces, and the suite's time does not
# depend on luck (a random draw once found a 57 s example; see test_sim_invariants.RandomOrder).
settings.register_profile("ltrsched", derandomize=True, print_blob=True)
settings.load_profile("ltrsched")

from ltrsched.sim.step_shape import StepShape  # noqa: E402
from ltrsched.workloads.schema import Workload  # noqa: E402


@pytest.hookimpl(optionalhook=True)  # (xdist's hook: without xdist, never called)
def pytest_xdist_make_scheduler(config, log):
    """``-n 2 --dist loadfile`` (the README's test command) hands out the heaviest test file left first
    (tests/heaviest_first.py); xdist handed out the files with the most tests first, the slowest ones last."""
    from heaviest_first import make_scheduler

    return make_scheduler(config, log)


@dataclass(frozen=True)
class LinearProfile:
    """step_time = overhead + per_token * tokens + per_kv * decode KV tokens + per_pair * prefill pairs [s]."""

    overhead: float = 0.01
    per_token: float = 0.001
    per_kv: float = 0.0
    per_pair: float = 0.0
    blocks: int = 10_000
    kv_bytes_per_token: int = 1024
    host_link_bytes_per_s: float = 1e12
    max_model_len: int = 100_000
    name: str = "linear-test"

    def step_time(self, s: StepShape) -> float:
        return (self.overhead + self.per_token * s.num_tokens + self.per_kv * s.decode_context_tokens
                + self.per_pair * s.prefill_attention_pairs)

    def num_gpu_blocks(self, block_size: int = 16, gpu_memory_utilization: float = 0.9) -> int:
        return self.blocks


@pytest.fixture
def linear_profile() -> LinearProfile:
    return LinearProfile()


def save_word_chat_tokenizer(path) -> None:
    """Save into ``path`` a word-level tokenizer of 8 words (ids 0-7) whose chat template wraps a prompt in 6 of
    them: a model directory's tokenizer for the checks before an engine start, with no download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<user>", "</user>", "<assistant>", "[", "]", "hello", "world"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.chat_template = ("{% for m in messages %}<user> [ {{ m['content'] }} ] </user>{% endfor %}"
                          "{% if add_generation_prompt %} <assistant> [{% endif %}")
    fast.save_pretrained(str(path))


def make_workload(prompts, outputs, arrivals=None, **extra) -> Workload:
    n = len(prompts)
    cols = {
        "request_id": np.arange(n, dtype=np.int64),
        "prompt_tokens": np.asarray(prompts, dtype=np.int64),
        "output_tokens": np.asarray(outputs, dtype=np.int64),
        "arrival_time": np.zeros(n) if arrivals is None else np.asarray(arrivals, dtype=np.float64),
    }
    cols.update({k: np.asarray(v, dtype=np.float64) for k, v in extra.items()})
    return Workload(pl.DataFrame(cols), "test")


@pytest.fixture(scope="module")
def vllm_scheduler_code():
    """vLLM's V1 scheduler must import (the README's test command installs requirements/engine-cpu.txt);
    a missing install fails the test rather than skipping it. Module-scoped: a module fixture that starts the
    emulated engine can take it too."""
    try:
        import vllm.v1.core.sched.scheduler  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"vLLM's scheduler does not import ({exc}); install it with "
                    "`pip install --no-deps -r requirements/engine-cpu.txt` or deselect with -m 'not vllm'")


@dataclass(frozen=True)
class ProcessState:
    """What a test module may change for every later one in its process: the environment, the CPUs the process
    may run on, torch's thread count (None: torch not imported) and whether ``torch.set_num_threads`` is torch's
    own. Starting vLLM's CPU engine in the test process changes them all, for good: ``pin_threads`` sets
    ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and the process's CPUs; vLLM's CPU platform sets ``LD_PRELOAD``
    (tcmalloc, torch's libgomp: every command a later test starts would load them) and more, an emulated engine's
    config included; its CPU worker binds torch's threads to CPUs and makes ``torch.set_num_threads`` a no-op.
    In one process, tests/test_engine_cpu.py then failed tests/test_predictors.py's thread-count tests."""

    environ: tuple[tuple[str, str], ...]
    cpus: frozenset[int] | None
    torch_threads: int | None
    torch_setter_own: bool | None

    @classmethod
    def now(cls) -> "ProcessState":
        torch = sys.modules.get("torch")
        environ = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # (pytest's own, per phase)
        return cls(tuple(sorted(environ.items())),
                   frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                   None if torch is None else torch.get_num_threads(),
                   None if torch is None else torch.set_num_threads is torch._C.set_num_threads)

    def restore(self) -> None:
        """Put this state back (torch's thread count only if torch was imported then; its own setter always)."""
        current = os.environ.get("PYTEST_CURRENT_TEST")
        os.environ.clear()
        os.environ.update(dict(self.environ))
        if current is not None:
            os.environ["PYTEST_CURRENT_TEST"] = current
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads = torch._C.set_num_threads
            if self.torch_threads is not None:
                torch.set_num_threads(self.torch_threads)


@pytest.fixture(scope="module", autouse=True)
def _process_left_as_found(request):
    """Every test module leaves the process as it found it (:class:`ProcessState`). A module marked ``cpu_engine``
    starts vLLM's CPU engine here: torch is imported before it, so that torch's thread count is put back too."""
    if request.node.get_closest_marker("cpu_engine") is not None:
        import torch  # noqa: F401
    before = ProcessState.now()
    yield
    before.restore()
