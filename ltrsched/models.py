"""Public Hugging Face model configs of the models the built-in profiles serve (shared by the simulator's
KV-capacity derivation and the engine runner, which serves them with random weights).

Numbers copied by hand from the models' published ``config.json`` (sizes only; no weights needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

from ltrsched import atomic

_LLAMA3_COMMON = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}

#: meta-llama/Meta-Llama-3-8B(-Instruct): 8,030,261,248 parameters.
LLAMA3_8B = MappingProxyType({
    **_LLAMA3_COMMON,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
})

#: meta-llama/Meta-Llama-3-70B(-Instruct): 70,553,706,496 parameters.
LLAMA3_70B = MappingProxyType({
    **_LLAMA3_COMMON,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
})


#: Built-in model names -> config.
MODELS = MappingProxyType({"llama-3-8b": LLAMA3_8B, "llama-3-70b": LLAMA3_70B})


def write_model_dir(name: str, directory: str | Path) -> Path:
    """Write ``config.json`` of the built-in model ``name`` into ``directory`` (a model vLLM can load with
    ``load_format="dummy"``: the architecture and sizes of the real one, random weights); returns it."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; built-in: {', '.join(MODELS)}")
    path = Path(directory)
    atomic.write_text(path / "config.json", json.dumps(dict(MODELS[name]), indent=2))
    return path
