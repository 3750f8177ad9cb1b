"""The context check before the engine starts (:mod:`ltrsched.engine.model_context`) on configs beyond a plain one:
RoPE parameters per layer type, a composite model's ``text_config``, sliding windows. Each context is the one vLLM
0.32 derives (the last test asks vLLM's own code); where it depends on what config.json alone does not say, or
vLLM refuses the config once started, the check refuses first, in one line."""

from __future__ import annotations

import json

import pytest

from conftest import make_workload
from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY

TINY = dict(LLAMA_TINY)  # max_position_embeddings 4096
NO_KEY = {k: v for k, v in TINY.items() if k != "max_position_embeddings"}
LLAVA = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"]}

#: config.json and the context [tokens] vLLM 0.32 derives from it.
DERIVED = [
    # a composite model: the text model's context, its RoPE scaling; the keys beside text_config do not count
    ({**LLAVA, "max_position_embeddings": 1000, "text_config": {**TINY, "max_position_embeddings": 8192}}, 8192),
    ({**LLAVA, "text_config": {**TINY, "rope_scaling": {"type": "linear", "factor": 2.0}}}, 8192),
    ({**LLAVA, "rope_scaling": {"type": "linear", "factor": 2.0}, "text_config": dict(TINY)}, 4096),
    ({**LLAVA, "text_config": {k: v for k, v in TINY.items() if k != "model_type"}}, 4096),
    ({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],  # (Gemma 3: scaled already)
      "text_config": {**TINY, "model_type": "gemma3_text", "head_dim": 64, "rope_parameters": {
          "full_attention": {"rope_type": "linear", "factor": 8.0}, "sliding_attention": {"rope_type": "default"}}}},
     4096),
    # RoPE per layer type without a scaling factor: none whichever way the model's class reads them
    ({**TINY, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "head_dim": 64, "rope_parameters": {
        "full_attention": {"rope_type": "default"}, "sliding_attention": {"rope_type": "default"}}}, 4096),
    ({**TINY, "rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 4.0,
                                                     "original_max_position_embeddings": 1024}}}, 4096),
    # a sliding window leaves the context as it is (vLLM caps it only with disable_sliding_window)
    ({**TINY, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 1024}, 4096),
    ({**TINY, "sliding_window": 0}, 4096),
    ({**TINY, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": True,
      "sliding_window": 1024, "max_window_layers": 0}, 4096),  # (every layer slides: vLLM refuses some only)
    ({**TINY, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": False,
      "sliding_window": 1024}, 4096),
]

#: config.json the check refuses, and what its line says.
REFUSED = [
    # per layer type with a factor: vLLM applies it for qwen3 (8192), not for llama (4096), by transformers' class
    ({**TINY, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "head_dim": 64, "rope_parameters": {
        "full_attention": {"rope_type": "linear", "factor": 2.0}, "sliding_attention": {"rope_type": "default"}}},
     "rope_parameters are set per layer type, with a RoPE scaling factor 2.0: vLLM applies it"),
    ({**TINY, "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 2.0}}},
     "rope_parameters are set per layer type, with a RoPE scaling factor 2.0"),
    # the context is the default of transformers' config class (llama: 2048, mistral: 131072; llava's text: 2048)
    (NO_KEY, "gives none of the keys vLLM reads a model's context from (max_position_embeddings, ...)"),
    ({**NO_KEY, "model_type": "mistral"}, "gives none of the keys"),
    ({**LLAVA, "max_position_embeddings": 1000, "text_config": NO_KEY},
     "gives none of the keys vLLM reads a model's context from (text_config.max_position_embeddings, ...)"),
    # vLLM refuses these once started
    ({**TINY, "text_config": dict(TINY)}, "model type 'llama' has no text config in transformers, so vLLM refuses"),
    ({**LLAVA, "text_config": dict(TINY), "decoder": dict(TINY)}, "has 2 text configs (decoder, text_config)"),
    ({**TINY, "max_position_embeddings": 0}, "max_position_embeddings must be a positive whole number of tokens, got 0"),
    ({**LLAVA, "text_config": {**TINY, "seq_length": "x"}},
     "text_config.seq_length must be a positive whole number of tokens, got 'x'"),
    ({**TINY, "model_type": "no-such-type", "text_config": dict(TINY)},
     "transformers has no config class for model type 'no-such-type'"),
    ({**TINY, "model_type": "moss_audio"}, "vLLM derives the context of a 'moss_audio' model its own way"),
]


def _model_dir(path, config: dict):
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _engine_config(path, **options):
    from ltrsched.validation.engines import engine_config

    return engine_config(model=str(path), platform="cpu", **options)


@pytest.mark.parametrize("config, context", DERIVED)
def test_the_context_before_the_start_is_the_one_vllm_derives(tmp_path, config, context):
    """These were left to vLLM's check once started (no early refusal: the engine started first)."""
    from ltrsched.engine.model_context import model_context

    assert model_context(_model_dir(tmp_path / "m", config))[0] == context


@pytest.mark.parametrize("config, context", DERIVED)
def test_the_check_before_the_start_refuses_one_token_more(tmp_path, config, context):
    """A request of the derived context fits and one token more is refused before the start. A composite model's
    config.json was refused before, for its layer count: :func:`ltrsched.models.layer_count` read the top level
    only, where vLLM reads the text model's."""
    from ltrsched.validation.engines import check_context_before_start

    engine = _engine_config(_model_dir(tmp_path / "m", config))
    check_context_before_start(make_workload([context - 4], [4]), engine)
    with pytest.raises(UserError, match=rf"^1 request\(s\) exceed the engine's max_model_len {context} tokens "):
        check_context_before_start(make_workload([context - 3], [4]), engine)


@pytest.mark.parametrize("config, says", REFUSED)
def test_a_context_that_cannot_be_told_or_that_vllm_refuses_is_refused_in_one_line(tmp_path, config, says):
    from ltrsched.engine.model_context import model_context

    path = _model_dir(tmp_path / "m", config)
    with pytest.raises(UserError) as caught:
        model_context(path)
    line = str(caught.value)
    assert line.startswith(f"{path / 'config.json'}") and says in line and "\n" not in line, line


@pytest.mark.parametrize("config", [c for c, says in REFUSED[:4]])
def test_a_context_that_cannot_be_told_is_refused_before_the_start_unless_stated(tmp_path, config):
    """The refusal names --max-model-len, and a stated context is not derived (vLLM checks it once started)."""
    from ltrsched.validation.engines import check_context_before_start

    path = _model_dir(tmp_path / "m", {"num_hidden_layers": 2, **config})
    with pytest.raises(UserError, match="give --max-model-len"):
        check_context_before_start(make_workload([10], [4]), _engine_config(path))
    check_context_before_start(make_workload([508], [4]), _engine_config(path, max_model_len=512))


@pytest.mark.vllm
@pytest.mark.parametrize("config, context", DERIVED + [(c, None) for c, _ in REFUSED[:2]])
def test_the_derived_context_is_vllms_own(tmp_path, config, context):
    """vLLM's own derivation (its config reading, text config and ``_get_and_verify_max_len``, as its ModelConfig
    calls it) gives the contexts above; for RoPE per layer type it differs by model class (the refused cases)."""
    from transformers import AutoConfig
    from vllm.config.model import _get_and_verify_max_len
    from vllm.transformers_utils.config import get_hf_text_config, patch_rope_parameters
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase

    hf = AutoConfig.from_pretrained(str(_model_dir(tmp_path / "m", config)))
    patch_rope_parameters(hf)
    text = get_hf_text_config(hf)
    if text is not hf:
        patch_rope_parameters(text)
    arch = ModelArchConfigConvertorBase(hf, text)
    derived = type("Arch", (), {"derived_max_model_len_and_key": arch.derive_max_model_len_and_key()})()
    window = getattr(text, "sliding_window", None)
    got = _get_and_verify_max_len(text, derived, None, None, window == 0, None if window == 0 else window)
    if context is not None:
        assert got == context
    else:  # qwen3 takes layer types, llama does not
        assert got == {"qwen3": 8192, "llama": 4096}[config["model_type"]]


#: The KV bytes per token [bytes] of TINY at float32: 2 (keys, values) x 2 layers x 4 KV heads x 64 x 4 bytes.
TINY_KV_FLOAT32 = 2 * 2 * 4 * 64 * 4
#: Sizes beside a composite model's text_config, which vLLM does not read the text model's shape from.
DECOYS = {"num_hidden_layers": 32, "num_attention_heads": 2, "num_key_value_heads": 1, "hidden_size": 8}


@pytest.mark.parametrize("config, per_token", [
    # (at --dtype auto, 16 bits: vLLM serves a float32 model at bfloat16, and these at their own)
    ({**LLAVA, **DECOYS, "text_config": dict(TINY)}, TINY_KV_FLOAT32 // 2),
    ({**LLAVA, "text_config": {**TINY, "torch_dtype": "float16"}}, TINY_KV_FLOAT32 // 2),  # (its dtype, as vLLM's)
    ({**LLAVA, "torch_dtype": "float32", "text_config": {**TINY, "torch_dtype": "bfloat16"}}, TINY_KV_FLOAT32 // 2),
    ({**LLAVA, "text_config": {**TINY, "head_dim": 32, "num_key_value_heads": 2}}, TINY_KV_FLOAT32 // 8),
    (TINY, TINY_KV_FLOAT32 // 2),
])
def test_kv_sizes_are_the_text_models_as_vllm_reads_them(tmp_path, config, per_token):
    """A composite model's layer count and attention shape are its text model's (vLLM's ``hf_text_config``, found
    as the context is): its KV cache was sized from the keys beside text_config, or refused without them."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.models import layer_count

    path = _model_dir(tmp_path / "m", config)
    assert model_kv_bytes_per_token(str(path), "auto") == per_token
    assert model_kv_bytes_per_token(str(path), "float32") == TINY_KV_FLOAT32 // (TINY_KV_FLOAT32 // 2 // per_token)
    assert layer_count(config, "x") == 2
    _engine_config(path, num_gpu_blocks=4)  # (sized before the start: the RAM check reads the KV bytes too)


@pytest.mark.parametrize("config, says", [
    ({**LLAVA, **DECOYS, "text_config": {k: v for k, v in TINY.items() if k != "num_hidden_layers"}},
     "has no 'text_config.num_hidden_layers' (the model's number of decoder layers"),
    ({**LLAVA, "text_config": {**TINY, "num_attention_heads": 0}}, ": 'text_config.num_attention_heads' must be a "
                                                                   "positive integer, got 0"),
    ({**LLAVA, **DECOYS, "decoder": dict(TINY)}, ": its text config is 'decoder' (a dict), whose layer count and KV "
     "sizes ltrsched cannot read before the engine starts; ltrsched needs its layer count and KV sizes before the "
     "engine starts, so it cannot serve this model"),
    ({**TINY, "text_config": dict(TINY)}, "model type 'llama' has no text config in transformers, so vLLM refuses"),
])
def test_a_text_model_without_its_sizes_is_refused_in_one_line_naming_them(tmp_path, config, says):
    path = _model_dir(tmp_path / "m", config)
    with pytest.raises(UserError) as caught:
        _engine_config(path, num_gpu_blocks=4)
    line = str(caught.value)
    assert line.startswith(str(path / "config.json")) and says in line and "\n" not in line, line


def test_a_model_type_vllm_takes_its_context_from_elsewhere_is_sized_as_any():
    """(Its context is refused, with --max-model-len as the way out; its sizes are read like any other model's.)"""
    from ltrsched.models import kv_bytes_per_token

    assert kv_bytes_per_token({**TINY, "model_type": "moss_audio"}, 4) == TINY_KV_FLOAT32


@pytest.mark.vllm
@pytest.mark.parametrize("config", [{**LLAVA, **DECOYS, "text_config": dict(TINY)},
                                    {**LLAVA, "text_config": {**TINY, "head_dim": 32, "num_key_value_heads": 2}}])
def test_the_text_models_sizes_are_where_vllm_reads_them(tmp_path, config):
    """vLLM's own text config (``get_hf_text_config``, as its ModelConfig reads layers and heads) has the sizes the
    KV bytes were taken from."""
    from transformers import AutoConfig
    from vllm.transformers_utils.config import get_hf_text_config

    from ltrsched.models import kv_bytes_per_token, layer_count

    text = get_hf_text_config(AutoConfig.from_pretrained(str(_model_dir(tmp_path / "m", config))))
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert layer_count(config, "x") == text.num_hidden_layers == 2
    assert kv_bytes_per_token(config, 4) == 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * 4


def test_a_profiles_model_config_is_the_text_models(tmp_path):
    """``profile`` writes its simulator profile from the served model's sizes: a composite model's text_config (the
    top level has none, or decoys), at the dtype it is served in (``auto``: the text model's, as vLLM's). It read the
    top level, and failed after measuring, or sized the profile's KV cache from the decoys."""
    from types import SimpleNamespace

    from ltrsched.sim.kv_capacity import ModelShape, kv_bytes_per_token
    from ltrsched.validation.engines import Engine

    path = _model_dir(tmp_path / "m", {**LLAVA, **DECOYS, "text_config": {**TINY, "torch_dtype": "bfloat16"}})
    engine = object.__new__(Engine)
    for dtype, per_token in (("float32", TINY_KV_FLOAT32), ("auto", TINY_KV_FLOAT32 // 2)):
        engine.config = SimpleNamespace(model=str(path), dtype=dtype)
        assert kv_bytes_per_token(ModelShape.from_config(engine.model_config(), source="p")) == per_token
