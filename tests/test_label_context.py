"""`ltrsched label` skips (and reports) the prompts that cannot fit the context the engine will take, before it
starts; that context is the one replay's check reads (:func:`ltrsched.validation.engines.expected_context`), not a
second copy of it. The labelling command's own copy read ``max_position_embeddings`` alone: a RoPE-scaled model's
prompts were skipped as too long though the engine takes them, and a model whose ``model_max_length`` is shorter
started the engine with prompts it refuses."""

from __future__ import annotations

import json

import pytest

from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY
from test_cli_simulate import run_cli_in_process
from test_labels import _tiny_chat_model


class _Started(UserError):
    """Stands in for the engine's start (none is started here): the prompts it would have served."""


#: llama-tiny's sizes without its context (a size left out is transformers' default, refused before the start).
SIZES = {k: v for k, v in LLAMA_TINY.items() if k != "max_position_embeddings"}


def _label(tmp_path, monkeypatch, capsys, config: dict, words: list[int], max_tokens: int, *options: str):
    """``ltrsched label`` on a model directory whose config.json is llama's sizes + ``config``, over prompts of
    ``words`` words (one token each); (exit code, its stderr)."""
    import ltrsched.labelling.run as run

    pytest.importorskip("transformers")
    model = _tiny_chat_model(tmp_path / "m", context=64)
    (model / "config.json").write_text(json.dumps({**SIZES, **config}))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": " ".join(["w"] * n), "id": f"p{n}"}) + "\n" for n in words))

    def started(todo, ids, config, settings, store, chunk, stats):
        raise _Started(f"the engine would serve {sorted(j.key for j in todo)}, {len(stats.skipped)} skipped "
                       f"in the {stats.context}-token context")

    monkeypatch.setattr(run, "_serve", started)
    code, _, err = run_cli_in_process(capsys, "label", "--model", str(model), "--prompts", str(prompts),
                                      "--splits", "train,eval", "--max-tokens", str(max_tokens), "--kv-cache-gib", "1",
                                      "--out", str(tmp_path / "l.parquet"), *options)
    return code, err.strip()


def test_a_rope_scaled_models_prompts_are_served_up_to_its_scaled_context(tmp_path, monkeypatch, capsys):
    code, err = _label(tmp_path, monkeypatch, capsys, {"max_position_embeddings": 64,
                                                       "rope_scaling": {"type": "linear", "factor": 4.0}},
                       [10, 100, 200, 300], 50)
    assert (code, err) == (2, "error: the engine would serve ['p10', 'p100', 'p200'], 1 skipped in the 256-token "
                              "context")


def test_prompts_beyond_a_shorter_model_max_length_are_skipped_before_the_start(tmp_path, monkeypatch, capsys):
    code, err = _label(tmp_path, monkeypatch, capsys, {"max_position_embeddings": 64, "model_max_length": 32},
                       [5, 20, 40], 10)
    assert (code, err) == (2, "error: the engine would serve ['p20', 'p5'], 1 skipped in the 32-token context")
    code, err = _label(tmp_path, monkeypatch, capsys, {"max_position_embeddings": 64, "model_max_length": 32},
                       [30, 40], 10)
    assert code == 2 and err.startswith("error: none of the 2 prompt(s) fits the 32-token context"), err


def test_a_composite_models_prompts_are_fitted_to_its_text_models_context(tmp_path, monkeypatch, capsys):
    """vLLM reads a composite model's context (and layer count) from its text_config; the copy read the top level's."""
    text = {**SIZES, "max_position_embeddings": 32}
    code, err = _label(tmp_path, monkeypatch, capsys, {"model_type": "llava", "max_position_embeddings": 64,
                                                       "text_config": text}, [5, 20, 40], 10)
    assert (code, err) == (2, "error: the engine would serve ['p20', 'p5'], 1 skipped in the 32-token context")


def test_a_context_the_config_does_not_tell_is_refused_before_the_start_unless_stated(tmp_path, monkeypatch,
                                                                                        capsys):
    code, err = _label(tmp_path, monkeypatch, capsys, {}, [5, 6], 10)
    assert code == 2 and "gives none of the keys vLLM reads a model's context from" in err and "\n" not in err
    code, err = _label(tmp_path, monkeypatch, capsys, {}, [5, 40], 10, "--max-model-len", "32")
    assert (code, err) == (2, "error: the engine would serve ['p5'], 1 skipped in the 32-token context")
