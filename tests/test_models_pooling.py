"""Pooling models (embeddings, classifiers, rewards) told from their files where a generating model is needed: a
sentence-transformers directory whose modules.json lists a pooling module (vLLM serves it so whatever config.json's
architectures), a profile's model config that names no architectures (vLLM takes its type's base class), and both
without vLLM installed, where an architecture's suffix tells. Small config directories only: no weights."""

from __future__ import annotations

import json
import re

import pytest

from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY

TINY = dict(LLAMA_TINY)
NO_ARCHS = {k: v for k, v in TINY.items() if k != "architectures"}
POOLING = "sentence_transformers.models.Pooling"


def _has_vllm():
    from ltrsched.config_classes import vllm_distribution

    return vllm_distribution() is not None


needs_vllm_source = pytest.mark.skipif(not _has_vllm(), reason="reads the installed vLLM's source")


def _st_dir(path, config, modules=None):
    """A sentence-transformers model directory: config.json, modules.json (by default a Transformer module and a
    mean-pooling module), its pooling module's config and config_sentence_transformers.json."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    modules = modules if modules is not None else [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": POOLING}]
    (path / "modules.json").write_text(modules if isinstance(modules, str) else json.dumps(modules))
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (path / "config_sentence_transformers.json").write_text(json.dumps({"similarity_fn_name": "cosine"}))
    return path


@pytest.fixture
def no_vllm(monkeypatch):
    """The architecture checks as where vLLM is not installed: its source cannot be read."""
    from ltrsched import architectures

    monkeypatch.setattr(architectures, "vllm_file", lambda relative: None)
    for cached in (architectures.installed_registry, architectures._served_classes, architectures._model_modules):
        cached.cache_clear()
    assert architectures.installed_registry() is None
    yield
    monkeypatch.undo()
    for cached in (architectures.installed_registry, architectures._served_classes, architectures._model_modules):
        cached.cache_clear()


def _st_says(path) -> str:
    return (f"{path / 'modules.json'}: lists the sentence-transformers pooling module {POOLING!r}, so vLLM serves the "
            "model as a pooling model (embeddings), not for generation, whatever its architectures: ltrsched serves "
            "only generative models (*ForCausalLM / *ForConditionalGeneration)")


def test_a_sentence_transformers_directory_is_refused_before_the_start(tmp_path, capsys):
    """vLLM picks its pooling runner for a directory whose modules.json lists a pooling module, before it looks at
    the architectures ("Some Sentence Transformers models use *ForCausalLM archs"): LlamaModel and Qwen2ForCausalLM
    passed the check, and replay started an engine that cannot generate."""
    from cli_helpers import run_cli_fast
    from ltrsched.architectures import check_architecture

    path = _st_dir(tmp_path / "m", {**TINY, "architectures": ["Qwen2ForCausalLM"]})
    r = run_cli_fast(capsys, "replay", "-m", path, "-w", "lmsys-like", "-n", "2", "-o", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: {_st_says(path)}"], r.stderr
    for archs in (["LlamaModel"], ["BertModel"], ["LlamaForCausalLM"]):
        config = {**TINY, "architectures": archs}
        with pytest.raises(UserError) as err:
            check_architecture(config, str(path / "config.json"), path)
        assert str(err.value) == _st_says(path)


def test_modules_json_without_a_pooling_module_leaves_the_model_to_its_architecture(tmp_path):
    from ltrsched.architectures import check_architecture, sentence_transformers_pooling

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1", "type": "sentence_transformers.models.Normalize"}, "odd", {"type": []}]
    path = _st_dir(tmp_path / "m", TINY, modules)
    assert sentence_transformers_pooling(path) is None
    check_architecture(TINY, str(path / "config.json"), path)
    assert sentence_transformers_pooling(tmp_path / "none") is None  # (no modules.json: nothing to tell)


def test_a_modules_json_vllm_cannot_read_is_one_line(tmp_path):
    """vLLM's start json-loads modules.json: a damaged one failed it with a traceback."""
    from ltrsched.architectures import check_architecture

    path = _st_dir(tmp_path / "m", TINY, "[{")
    with pytest.raises(UserError, match=rf"^{re.escape(str(path / 'modules.json'))}: not readable JSON \(.*\); vLLM "
                                        "reads it for a sentence-transformers pooling module and fails to start"):
        check_architecture(TINY, str(path / "config.json"), path)


@needs_vllm_source
@pytest.mark.parametrize("model_type, pooled", [("bert", "BertModel"), ("roberta", "RobertaModel")])
def test_a_profile_config_naming_no_architectures_is_read_as_vllm_reads_it(model_type, pooled):
    """vLLM takes transformers' base class of the type where config.json names no architectures (BertModel: an
    embedding model); the engine side refused it, a profile's model config was sized with an LM head."""
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^p.json: architecture {pooled!r} is served by vLLM as a pooling model "):
        ModelShape.from_config({**NO_ARCHS, "model_type": model_type}, "p.json")


@needs_vllm_source
@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "qwen2_5_vl_text"])
def test_a_text_config_naming_no_architectures_of_a_generative_model_is_not_refused(model_type):
    """A profile's model config may be a composite model's text config (no architectures): Gemma3TextModel is vLLM's
    embedding class, but its module serves Gemma3ForCausalLM; Qwen2_5_VLTextModel is no class vLLM registers."""
    from ltrsched.architectures import check_generative

    check_generative({**NO_ARCHS, "model_type": model_type}, "p.json")


@pytest.mark.parametrize("arch", ["LlamaForSequenceClassification", "Qwen2ForRewardModel", "BertForTokenClassification",
                                  "GteEmbeddingModel"])
def test_without_vllm_a_pooling_suffix_is_refused_in_a_profile(no_vllm, arch):
    """Without vLLM installed (the simulator needs none) the profile side refused no pooling model at all."""
    from ltrsched.sim.kv_capacity import ModelShape

    says = (f"architecture {arch!r} is served by vLLM as a pooling model (embeddings, classification or rewards), "
            "not for generation")
    with pytest.raises(UserError, match=f"^p.json: {re.escape(says)}"):
        ModelShape.from_config({**TINY, "architectures": [arch]}, "p.json")


@pytest.mark.parametrize("archs", [["LlamaForCausalLM"], ["LlamaModel"], ["BertModel"], ["MyArch"],
                                   ["LlamaForCausalLM", "LlamaForSequenceClassification"]])
def test_without_vllm_what_the_suffix_cannot_tell_is_sized(no_vllm, archs):
    """A plain *Model may be generative (vLLM serves LlamaModel as LlamaForCausalLM), an unknown name registered:
    without vLLM's registry only the first name's pooling suffix tells."""
    from ltrsched.sim.kv_capacity import ModelShape

    assert ModelShape.from_config({**TINY, "architectures": archs}, "p.json").num_layers == TINY["num_hidden_layers"]


def test_without_vllm_a_sentence_transformers_directory_is_refused(no_vllm, tmp_path):
    from ltrsched.architectures import check_architecture

    path = _st_dir(tmp_path / "m", {**TINY, "architectures": ["Qwen2ForCausalLM"]})
    with pytest.raises(UserError) as err:
        check_architecture(TINY, str(path / "config.json"), path)
    assert str(err.value) == _st_says(path)


@needs_vllm_source
def test_the_suffixes_and_pooling_modules_are_the_installed_vllms():
    """:data:`VLLM_RUNNERS` and :data:`ST_POOLING_TYPES` copy vLLM 0.32's tables for where it is not installed: the
    installed one's source gives the same."""
    import ast

    from ltrsched.architectures import ST_POOLING_TYPES, VLLM_RUNNERS, installed_registry
    from ltrsched.config_classes import assignments, vllm_file

    assert installed_registry().runners == VLLM_RUNNERS
    types = assignments(vllm_file("transformers_utils/config.py"))["_ST_POOLING_MODULE_TYPES"]
    assert frozenset(ast.literal_eval(types)) == ST_POOLING_TYPES


def test_the_base_classes_are_read_from_transformers_source_without_importing_it(monkeypatch):
    """vLLM's class for a config naming no architectures: transformers' base class of its type, read from its source
    (importing transformers' modelling tables took seconds and loaded torch): with that import made to fail, it is
    still found."""
    pytest.importorskip("transformers")
    import sys

    from ltrsched import architectures

    monkeypatch.setitem(sys.modules, "transformers.models.auto.modeling_auto", None)  # (an import of it: ImportError)
    architectures._base_model_classes.cache_clear()
    try:
        assert [architectures._base_model_class(t) for t in ("bert", "llama", "no-such-type", 7)] == [
            "BertModel", "LlamaModel", None, None]
    finally:
        architectures._base_model_classes.cache_clear()
