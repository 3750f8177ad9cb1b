"""Public Hugging Face model configs of the models the built-in profiles serve.

Numbers copied by hand from the models' published ``config.json`` (sizes only; no weights needed).
"""

from __future__ import annotations

from types import MappingProxyType

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
