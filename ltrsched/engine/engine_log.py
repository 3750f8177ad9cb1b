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
asked for vLLM's whole log (``VLLM_LOGGING_LEVEL=INFO`` or ``DEBUG``). Torch's C++ ``NUMA binding`` note
(``utils.cpp``, from vLLM's ``init_cpu_memory_env``) is written by c10's own handler straight to the process's
stderr: no Python filter or logger reaches it, and it is left as it is.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager

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
    with warnings.catch_warnings(), loggers_held(HELD_START_LOGGERS):
        for category, message, module in HELD_START_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


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
