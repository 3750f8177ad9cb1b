"""The probe backbone (--backbone probe): a linear head on a frozen causal LM's hidden state, on a tiny random
Llama made here (a word-level tokenizer with a chat template), offline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("transformers")

from ltrsched.errors import UserError  # noqa: E402
from ltrsched.predictors.config import PredictorConfig  # noqa: E402
from ltrsched.predictors.predictor import Predictor, kendall_tau  # noqa: E402

WORDS = ["please", "explain", "list", "write", "story", "yes", "no", "short", "long", "essay", "word", "a", "the",
         "of", "answer", "[", "]"]
TEMPLATE = "{% for m in messages %}[ {{ m['content'] }} ]{% endfor %}{% if add_generation_prompt %} answer{% endif %}"


def make_lm(directory, template: str | None = TEMPLATE, seed: int = 0, tokenizer: bool = True):
    """A 4-layer, 32-wide random Llama in ``directory``, with a word-level tokenizer (``template``: its chat
    template, None: none) unless ``tokenizer`` is False; ``seed`` sets its weights."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[EOS]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")
    if template is not None:
        fast.chat_template = template
    if tokenizer:
        fast.save_pretrained(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 4-layer, 32-wide random Llama with a word-level tokenizer and a chat template."""
    return make_lm(tmp_path_factory.mktemp("tiny-lm"))


def synthetic(n: int, seed: int):
    """Prompts whose length is set by one word ("long" or "short") among filler words."""
    rng = np.random.default_rng(seed)
    prompts, lengths = [], []
    filler = [w for w in WORDS if w not in ("long", "short", "[", "]", "answer")]
    for _ in range(n):
        is_long = rng.random() < 0.5
        words = list(rng.choice(filler, size=int(rng.integers(3, 9))))
        words.insert(int(rng.integers(0, len(words) + 1)), "long" if is_long else "short")
        prompts.append(" ".join(words))
        lengths.append(int(rng.integers(200, 400) if is_long else rng.integers(5, 100)))
    return prompts, np.array(lengths)


def test_features_are_the_hidden_state_after_the_layer_at_the_templated_prompts_last_token(tiny_lm):
    """The probe stops after its layer: its features must equal the full model's hidden state of that layer
    (transformers' own hidden_states) at the last token of the chat-templated prompt."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ltrsched.predictors.probe import ProbeBackbone

    prompts = ["please explain the story", "yes", "write a long essay of the word"]
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    lm = AutoModel.from_pretrained(tiny_lm, dtype=torch.float32).eval()
    for layer in (1, 3):
        backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_layer=layer), 1)
        feats = backbone.features(prompts)
        for i, p in enumerate(prompts):
            ids = tok(f"[ {p} ] answer", add_special_tokens=False)["input_ids"]  # the template, rendered by hand
            assert backbone._ids(p) == ids
            with torch.no_grad():
                ref = lm(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0, -1]
            assert torch.allclose(feats[i], ref, atol=1e-5)
    default = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm)), 1)
    assert default.config.probe_layer == 2  # half of 4 layers, recorded for the checkpoint


def test_long_prompts_keep_the_generation_prompt(tiny_lm):
    from ltrsched.predictors.probe import ProbeBackbone

    backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), max_prompt_tokens=12), 1)
    ids = backbone._ids(" ".join(["word"] * 40))
    full = backbone.tokenizer("[ " + " ".join(["word"] * 40) + " ] answer", add_special_tokens=False)["input_ids"]
    assert len(ids) == 12 and ids[-8:] == full[-8:] and ids[:4] == full[:4]
    backbone.config.max_prompt_tokens = 2048  # above the model's 256 positions: cut to those
    ids = backbone._ids(" ".join(["word"] * 400))
    assert len(ids) == 256 and ids[-8:] == full[-8:]
    assert backbone.features([" ".join(["word"] * 400)]).shape == (1, 32)


def test_probe_ranker_learns_trains_saves_and_loads(tiny_lm, tmp_path):
    prompts, lengths = synthetic(240, 0)
    ev_p, ev_l = synthetic(120, 1)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), lr=1e-2, epochs=10))
    pred.fit(prompts, lengths)
    scores = pred.scores(ev_p)
    assert kendall_tau(scores, ev_l) > 0.4  # one word decides the length (0 without learning)
    ck = pred.save(tmp_path / "ck")
    saved = json.loads((ck / "predictor.json").read_text())
    assert saved["backbone"] == "probe" and saved["probe_layer"] == 2
    assert (ck / "weights.pt").stat().st_size < 100_000  # the head and its standardisation, not the model
    again = Predictor.load(ck)
    assert np.allclose(again.scores(ev_p), scores, atol=1e-6)


def test_probe_checkpoint_of_another_model_is_refused(tiny_lm, tmp_path):
    """A checkpoint whose hf_path now names a model of another width (or depth) is a one-line error."""
    prompts, lengths = synthetic(40, 0)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), epochs=1))
    pred.fit(prompts, lengths)
    ck = pred.save(tmp_path / "ck")
    spec = json.loads((ck / "predictor.json").read_text())
    spec["probe_layer"] = 9
    (ck / "predictor.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"--probe-layer must be in \[1, 4\] for this 4-layer model, got 9"):
        Predictor.load(ck)


def _cli(capsys, *args) -> tuple[int, str, str]:
    from test_cli_simulate import run_cli_in_process  # (the model loads in seconds, not a fresh interpreter's)

    return run_cli_in_process(capsys, *args)


def _but_few_prompts_warning(err: str) -> str:
    """``err`` less the line that a tau on fewer than 100 held-out prompts says little (these tests' small sets:
    tests/test_tiny_samples.py checks that line)."""
    return "".join(line for line in err.splitlines(keepends=True) if "held-out prompts says little" not in line)


def test_cli_train_probe_and_its_bad_options(tiny_lm, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    prompts, lengths = synthetic(60, 0)
    ev_p, ev_l = synthetic(30, 1)
    for name, ps, ls in (("train", prompts, lengths), ("eval", ev_p, ev_l)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": int(n)}) + "\n"
                                                        for p, n in zip(ps, ls)))
    base = ("train", "--data", str(tmp_path / "train.jsonl"), "--eval-data", str(tmp_path / "eval.jsonl"))
    code, out, err = _cli(capsys, *base, "--backbone", "probe", "--hf-model", str(tiny_lm), "--epochs", "2",
                          "--out", str(tmp_path / "ck"))
    assert code == 0, err[-2000:]
    assert "held-out (30) Kendall tau" in out and "says little" in err  # (30 held-out prompts)
    assert _but_few_prompts_warning(err) == ""  # (no load report or progress bar of transformers)
    for args, message in [
        (("--backbone", "probe"), "--backbone probe needs --hf-model"),
        (("--probe-layer", "2"), "--probe-layer needs --backbone probe"),
        (("--backbone", "probe", "--hf-model", str(tiny_lm), "--probe-layer", "0"), "--probe-layer must be >= 1"),
        (("--backbone", "probe", "--hf-model", str(tiny_lm), "--probe-layer", "5"),
         "--probe-layer must be in [1, 4] for this 4-layer model, got 5"),
    ]:
        code, out, err = _cli(capsys, *base, *args, "--out", str(tmp_path / "bad"))
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"error: ") and message in err, err
    assert not (tmp_path / "bad").exists()


def test_label_report_with_a_probe_ranker(tiny_lm, tmp_path, capsys, monkeypatch):
    """label-report --probe adds the probe ranker's held-out tau: the tau of the same probe trained directly."""
    import polars as pl
    from test_labels import _labels_with_text

    from ltrsched.predictors.label_report import label_report

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    labels = _labels_with_text(tmp_path / "l.parquet", num_train=40, num_eval=20)
    report = label_report(labels, "l.parquet", sizes=["all"], seed=0, epochs=2, probe=str(tiny_lm))
    main = labels.filter(pl.col("run") == "main")
    train, ev = (main.filter(pl.col("split") == s) for s in ("train", "eval"))
    direct = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), lr=1e-3, epochs=2, seed=0))
    direct.fit(train["prompt"].to_list(), train["output_tokens"].to_numpy())
    expected = kendall_tau(direct.scores(ev["prompt"].to_list()), ev["output_tokens"].to_numpy())
    assert report.probe_ranker == pytest.approx(expected) and report.probe_layer == 2
    assert f"`--backbone probe --hf-model {tiny_lm}`, layer 2" in report.markdown("l.parquet")
    assert "probe" not in label_report(labels, "l.parquet", sizes=["all"], seed=0, epochs=1).markdown("l.parquet")
    code, out, err = _cli(capsys, "label-report", str(tmp_path / "l.parquet"), "--out", str(tmp_path / "r"),
                          "--probe-layer", "2")
    assert code == 2 and err.strip() == "error: --probe-layer needs --probe MODEL"
    code, out, err = _cli(capsys, "label-report", str(tmp_path / "l.parquet"), "--out", str(tmp_path / "r"),
                          "--probe", str(tmp_path / "nothing"))
    assert code == 2 and "--probe '" in err and "is not a local Hugging Face model directory" in err


def test_overhead_timing_computes_every_prompt_each_pass(tiny_lm, monkeypatch):
    """The probe memoizes hidden states per prompt (training scores its held-out prompts every epoch); a timing
    of the predictor must not time memo look-ups: every timed pass runs the model on every prompt."""
    from ltrsched.predictors.overhead import measure_overhead
    from ltrsched.predictors.probe import ProbeBackbone

    prompts, lengths = synthetic(12, seed=3)
    p = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), epochs=1, lr=1e-3, seed=0))
    p.fit(prompts, lengths)
    prompts = [f"write {i} " + " ".join(["word"] * i) for i in range(12)]  # new, distinct prompts
    ran = []
    real_run = ProbeBackbone._run
    monkeypatch.setattr(ProbeBackbone, "_run", lambda self, todo, *rest: (ran.extend(todo), real_run(self, todo, *rest))[1])
    measure_overhead(p, prompts, batch_size=5, repeat=2)
    assert len(ran) == 5 + 2 * len(prompts)  # the warm-up batch, then every prompt in each of the 2 passes
    assert sorted(ran[5:5 + len(prompts)]) == sorted(prompts)


def _write_jsonl(tmp_path) -> tuple[str, ...]:
    """train.jsonl and eval.jsonl of :func:`synthetic` prompts in ``tmp_path``; the ``train`` arguments reading them."""
    for name, (n, seed) in (("train", (60, 0)), ("eval", (30, 1))):
        ps, ls = synthetic(n, seed)
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": int(k)}) + "\n"
                                                        for p, k in zip(ps, ls)))
    return "train", "--data", str(tmp_path / "train.jsonl"), "--eval-data", str(tmp_path / "eval.jsonl")


@pytest.mark.parametrize("template, message", [
    ("{{ raise_exception('only system messages') }}", "TemplateError: only system messages"),
    ("{% for m in messages %}", "TemplateSyntaxError: Unexpected end of template"),
])
def test_a_chat_template_that_cannot_render_is_one_line_before_training(tmp_path, capsys, monkeypatch, template,
                                                                       message):
    """A model whose chat template raises (its raise_exception, or a syntax error) was a jinja2 traceback in the
    first epoch; now one line, when the model loads."""
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    model = make_lm(tmp_path / "lm", template=template)
    capsys.readouterr()  # (transformers' save progress bar)
    code, out, err = _cli(capsys, *_write_jsonl(tmp_path), "--backbone", "probe", "--hf-model", str(model),
                          "--out", str(tmp_path / "ck"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert err.startswith(f"error: the chat template of {model} cannot render a user message: ") and message in err
    assert not (tmp_path / "ck").exists()


def test_an_encoder_model_is_refused(tmp_path, capsys, monkeypatch):
    """An encoder (a tiny BERT: bidirectional attention) was accepted and trained a ranker on its [SEP] state, not
    a next-token position; now --backbone probe refuses it in one line."""
    import torch
    from transformers import BertConfig, BertModel

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    model = make_lm(tmp_path / "bert", template=None)  # (its word-level tokenizer)
    for f in ("config.json", "model.safetensors"):
        (model / f).unlink()
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS) + 2, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, max_position_embeddings=256)).save_pretrained(model)
    capsys.readouterr()
    code, out, err = _cli(capsys, *_write_jsonl(tmp_path), "--backbone", "probe", "--hf-model", str(model),
                          "--out", str(tmp_path / "ck"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert err.startswith(f"error: --backbone probe needs a causal language model, and {model} (BertModel) is not one")
    assert not (tmp_path / "ck").exists()


def test_a_probe_checkpoint_whose_model_was_replaced_is_refused(tmp_path, capsys, monkeypatch):
    """A checkpoint names its model by path only: a model of the same shape put there (other weights, here a
    second random init; or another tokenizer or chat template) gave other scores without a word. Now the checkpoint
    holds the model's features of a reference prompt, and loading it with another model is a one-line error."""
    import hashlib
    import shutil

    import torch

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    model = make_lm(tmp_path / "lm")
    prompts, lengths = synthetic(40, 0)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(model), epochs=1))
    pred.fit(prompts, lengths)
    ck = pred.save(tmp_path / "ck")
    scores = Predictor.load(ck).scores(prompts)  # the same model: accepted
    (tmp_path / "w.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": 5}) + "\n" for p in prompts))
    capsys.readouterr()
    predict = ("predict", "-m", str(ck), "-w", str(tmp_path / "w.jsonl"), "-o", str(tmp_path / "p.parquet"))
    assert _cli(capsys, *predict)[0] == 0

    make_lm(tmp_path / "other", seed=1)
    shutil.copy(tmp_path / "other" / "model.safetensors", model / "model.safetensors")
    capsys.readouterr()
    with pytest.raises(UserError, match="is not the one this probe was trained on"):
        Predictor.load(ck)
    code, out, err = _cli(capsys, *predict[:-1], str(tmp_path / "q.parquet"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "q.parquet").exists(), err[-2000:]
    assert err.startswith(f"error: {ck}: the model {model} is not the one this probe was trained on (its layer-2 state")

    # a checkpoint saved before the reference was recorded still loads (unchecked)
    shutil.rmtree(model)
    make_lm(model)
    state = torch.load(ck / "weights.pt", weights_only=True)
    del state["reference"]
    torch.save(state, ck / "weights.pt")
    spec = json.loads((ck / "predictor.json").read_text())
    spec["weights_sha256"] = hashlib.sha256((ck / "weights.pt").read_bytes()).hexdigest()
    (ck / "predictor.json").write_text(json.dumps(spec))
    assert np.array_equal(Predictor.load(ck).scores(prompts), scores)


def test_a_probe_checkpoint_whose_model_moved_names_the_checkpoint(tiny_lm, tmp_path, capsys, monkeypatch):
    """predict -m CK with CK's model gone said only "--hf-model '...' is not a local Hugging Face model directory",
    an option predict has not got; now the line names the checkpoint that needs the model."""
    import shutil

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    model = shutil.copytree(tiny_lm, tmp_path / "lm")
    prompts, lengths = synthetic(40, 0)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(model), epochs=1))
    pred.fit(prompts, lengths)
    ck = pred.save(tmp_path / "ck")
    (tmp_path / "w.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": 5}) + "\n" for p in prompts))
    model.rename(tmp_path / "moved")
    code, out, err = _cli(capsys, "predict", "-m", str(ck), "-w", str(tmp_path / "w.jsonl"), "-o",
                          str(tmp_path / "p.parquet"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert err.startswith(f"error: cannot load the predictor {ck}: --hf-model {str(model)!r} is not a local Hugging "
                          "Face model directory")


@pytest.mark.parametrize("outputs", [1, 10])
def test_the_same_features_get_the_same_score_at_any_place_in_a_batch(outputs):
    """Duplicate prompts (the same features) got scores differing in the last bits by their place in the batch
    (a matrix product's rows are summed in blocks: at SmolLM2's width, 576, 47 of the batch sizes 1-64 did), so
    ties among equal prompts were broken by batch position; and a prompt scored alone differed from the same in a
    batch. Each row is now scored on its own."""
    import torch

    from ltrsched.predictors.probe import _head

    torch.manual_seed(0)
    head = _head(576, outputs).eval()
    with torch.no_grad():
        head.mean.normal_()
        head.std.uniform_(0.5, 2.0)
        row = torch.randn(576) * 3
        alone = head(row[None])
        for n in range(1, 65):
            batch = torch.randn(n, 576)
            batch[:: 3] = row
            out = head(batch)
            assert torch.equal(out[:: 3], alone.expand_as(out[:: 3])), n


def test_prompts_are_remembered_while_training_only(tiny_lm, monkeypatch):
    """The memo of prompt states lived as long as the predictor and grew with every distinct prompt it ever scored
    (2.3 kB each at SmolLM2's width: a program scoring batch after batch of new prompts kept every one), and a
    scores() call whose prompts were seen before ran no model. Now a prompt's state is computed once per training (its held-out prompts
    are scored each epoch) and once per scores() call (duplicates in it once), and nothing is kept after."""
    prompts, lengths = synthetic(40, 0)
    ev_p, ev_l = synthetic(20, 1)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), epochs=3))
    runs = []
    real = pred.backbone._states
    monkeypatch.setattr(pred.backbone, "_states", lambda ids, **kw: runs.append(ids) or real(ids, **kw))
    pred.fit(prompts, lengths, ev_p, ev_l)
    assert len(runs) == len(set(prompts)) + len(set(ev_p))  # (not once per epoch)
    runs.clear()
    first = pred.scores(ev_p + ev_p)
    assert len(runs) == len(set(ev_p))
    assert np.array_equal(pred.scores(ev_p), first[: len(ev_p)]) and len(runs) == 2 * len(set(ev_p))
    assert not pred.backbone._memo


@pytest.mark.parametrize("layer, model, message", [
    (9, None, "--probe-layer must be in [1, 4] for this 4-layer model, got 9"),
    (None, "damaged", "cannot load Hugging Face model from"),
])
def test_label_report_refuses_a_bad_probe_before_training_the_other_rankers(tiny_lm, tmp_path, monkeypatch, layer,
                                                                             model, message):
    """label-report --probe M --probe-layer 9 (M has 4 layers), or a model directory that cannot load, failed only
    after the n-gram rankers and the learning curve had trained (minutes on a full labels file); now first."""
    import shutil

    from test_labels import _labels_with_text

    from ltrsched.predictors.label_report import label_report

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    labels = _labels_with_text(tmp_path / "l.parquet", num_train=40, num_eval=20)
    probe = tiny_lm
    if model == "damaged":
        probe = shutil.copytree(tiny_lm, tmp_path / "lm")
        (probe / "model.safetensors").write_bytes(b"not weights")
    heard = []
    with pytest.raises(UserError) as err:
        label_report(labels, "l.parquet", sizes=[10, "all"], seed=0, epochs=1, probe=str(probe), probe_layer=layer,
                     on_progress=heard.append)
    assert message in str(err.value) and heard == []


def test_training_prompts_that_all_read_the_same_are_refused(tiny_lm, tmp_path, capsys, monkeypatch):
    """--max-prompt-tokens 2 keeps the template's last 2 tokens of every prompt ("] answer"): all prompts gave the
    probe the same state and train wrote a ranker that scores every prompt alike ("Kendall tau n/a"); now refused."""
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    code, out, err = _cli(capsys, *_write_jsonl(tmp_path), "--backbone", "probe", "--hf-model", str(tiny_lm),
                          "--max-prompt-tokens", "2", "--out", str(tmp_path / "ck"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert err.startswith("error: all 60 training prompts give the probe the same state")
    assert "cut to --max-prompt-tokens 2): nothing to rank" in err
    assert not (tmp_path / "ck").exists()


def test_the_standardisation_is_set_by_the_training_prompts_only(tiny_lm):
    """The first prompts an untrained probe saw set its standardisation: scores() before fit() (API) fixed it to
    those prompts, not the training prompts. Now only training sets it."""
    prompts, lengths = synthetic(40, 0)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), epochs=1))
    pred.scores(["yes no", "no", "the the the essay"])
    pred.fit(prompts, lengths)
    feats = pred.backbone.features(prompts)
    assert np.allclose(pred.backbone.model.mean.numpy(), feats.mean(0).numpy(), atol=1e-6)


def test_a_probed_layer_that_does_not_run_is_one_line(tiny_lm, monkeypatch):
    """The decoder layers are found as the first list of num_hidden_layers modules; in a model where that list is
    not what its forward pass runs, the hook never fired and the probe died on a KeyError; now one line."""
    import torch

    import ltrsched.predictors.probe as probe

    monkeypatch.setattr(probe, "_decoder_layers", lambda model, count: torch.nn.ModuleList(
        torch.nn.Identity() for _ in range(count)))
    with pytest.raises(UserError, match=r"layer 2 of LlamaModel .* did not run .* --backbone probe cannot read it"):
        probe.ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm)), 1)


def test_a_model_directory_without_a_tokenizer_says_so(tmp_path, capsys, monkeypatch):
    """A model directory without tokenizer files failed with transformers' first line, "Couldn't instantiate the
    backend tokenizer from one of:" (the list it announces cut off); now the line says what is missing."""
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    model = make_lm(tmp_path / "lm", tokenizer=False)
    capsys.readouterr()
    code, out, err = _cli(capsys, *_write_jsonl(tmp_path), "--backbone", "probe", "--hf-model", str(model),
                          "--out", str(tmp_path / "ck"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert err.startswith(f"error: --hf-model {str(model)!r} has no tokenizer (no tokenizer.json or tokenizer_config")


def test_a_checkpoint_names_its_model_by_an_absolute_path_or_a_packaged_name(tiny_lm, tmp_path, capsys, monkeypatch):
    """train --hf-model lm (relative) recorded "lm": predict run from another directory found no model there (or
    another model of that name). A path is recorded absolute; a packaged model's name stays a name."""
    import shutil

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    shutil.copytree(tiny_lm, tmp_path / "lm")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, *_write_jsonl(tmp_path), "--backbone", "probe", "--hf-model", "lm", "--epochs", "1",
                          "--out", "ck")
    assert code == 0, err[-2000:]
    assert json.loads((tmp_path / "ck" / "predictor.json").read_text())["hf_path"] == str(tmp_path / "lm")
    monkeypatch.chdir(tmp_path / "elsewhere")
    prompts, _ = synthetic(10, 5)
    assert Predictor.load("../ck").scores(prompts).shape == (10,)
    PredictorConfig(backbone="probe", hf_path="smollm2").save(tmp_path / "elsewhere")
    assert json.loads((tmp_path / "elsewhere" / "predictor.json").read_text())["hf_path"] == "smollm2"


def test_a_config_without_a_layer_count_is_one_line_naming_it(tiny_lm, monkeypatch):
    """A model config without num_hidden_layers was reported as a 0-layer model ("--probe-layer must be in [1, 0]
    for this 0-layer model, got 1", a layer nobody gave); now the line names the config and what it lacks."""
    import ltrsched.predictors.probe as probe
    from transformers import PretrainedConfig

    with pytest.raises(UserError, match=r"^the config of m/lm \(Pre[Tt]rainedConfig\) has no num_hidden_layers: "
                                        r"--backbone probe needs the number of decoder layers"):
        probe._layer_count(PretrainedConfig(), "m/lm")
    with pytest.raises(UserError, match=r"gives num_hidden_layers 0:"):
        probe._layer_count(PretrainedConfig(num_hidden_layers=0), "m/lm")
    assert probe._layer_count(PretrainedConfig(num_hidden_layers=4), "m/lm") == 4
    real = probe._layer_count  # through the backbone: the model's own config
    monkeypatch.setattr(probe, "_layer_count", lambda cfg, path: real(PretrainedConfig(), path))
    with pytest.raises(UserError, match=f"the config of {tiny_lm} \\(Pre[Tt]rainedConfig\\) has no num_hidden_layers"):
        probe.ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm)), 1)


def test_near_constant_features_do_not_blow_up_the_standardisation():
    """The divisor was std + 1e-6: a feature constant over the training prompts (std 0, or float32 noise), moved by
    0.01 at prediction, became a z-score of 10,000 and outweighed every other feature. The divisor is now at least
    STD_FLOOR times the feature's scale; features that vary keep their own standard deviation."""
    import torch

    from ltrsched.predictors.probe import STD_FLOOR, _head, standardisation

    torch.manual_seed(0)
    feats = torch.randn(200, 8) * torch.tensor([1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    feats[:, 4] = 3.0  # constant
    feats[:, 5] = 50.0 + 1e-6 * torch.randn(200)  # a large offset with float noise
    feats[:, 6] = 0.0  # always zero
    mean, std = standardisation(feats)
    assert torch.allclose(std[[0, 1, 2, 3, 7]], feats.std(0)[[0, 1, 2, 3, 7]])
    assert float(std[4]) == pytest.approx(STD_FLOOR * 3.0)  # its own scale (3) is above the median scale (~1)
    assert float(std[5]) == pytest.approx(STD_FLOOR * 50.0, rel=1e-4)
    rms = feats.pow(2).mean(0).sqrt()
    assert float(std[6]) == pytest.approx(STD_FLOOR * float(rms.median())) and 0.5 < float(rms.median()) < 1.5
    head = _head(8, 1)
    with torch.no_grad():
        head.mean.copy_(mean)
        head.std.copy_(std)
        moved = mean.clone()
        moved[4] += 0.01  # a prompt unlike the training ones in a constant feature
        moved[6] += 0.01
        z = (moved - head.mean) / head.std
    assert float(z.abs().max()) < 10  # was 0.01 / 1e-6 = 10,000


def test_a_model_directory_without_a_layer_count_is_refused_before_it_loads(tiny_lm, tmp_path):
    """Its config.json's missing num_hidden_layers took transformers' default (LlamaConfig: 32): the probe loaded a
    32-layer model, its layers beyond the file's random (the load report is silenced), and probed layer 16 of it."""
    import shutil

    from ltrsched.predictors.probe import ProbeBackbone

    shutil.copytree(tiny_lm, tmp_path / "lm")
    config = tmp_path / "lm" / "config.json"
    data = json.loads(config.read_text())
    del data["num_hidden_layers"]
    config.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"^{re.escape(str(config))} has no 'num_hidden_layers'"):
        ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tmp_path / "lm")), 1)


def test_the_templates_shared_prefix_is_run_once_and_changes_no_feature(tiny_lm, monkeypatch):
    """Every templated prompt starts with the same tokens (SmolLM2: a system prompt and the user turn's header,
    24 tokens, a quarter of its eval prompts' tokens), whose states were recomputed for each prompt. Their keys and values
    are now computed once and each prompt runs only its own tokens: the features stay the full pass's."""
    import torch

    from ltrsched.predictors.probe import ProbeBackbone

    backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_layer=3), 1)
    prefix = backbone._prefix
    assert prefix == backbone._ids("yes")[:1] and backbone._prefix_cache is not None  # "[" before each message
    prompts = ["please explain the story", "yes", "write a long essay of the word"]
    full = torch.stack([backbone._states(backbone._ids(p))[-1] for p in prompts])
    runs = []
    real = backbone._states
    monkeypatch.setattr(backbone, "_states", lambda ids, **kw: runs.append(list(ids)) or real(ids, **kw))
    feats = backbone.features(prompts)
    assert torch.allclose(feats, full, atol=1e-5, rtol=1e-5)
    assert runs == [backbone._ids(p)[len(prefix):] for p in prompts]  # (each prompt's own tokens only)


def test_a_model_whose_cache_cannot_be_reused_probes_every_token(tiny_lm, monkeypatch):
    """If the cached prefix does not give the full pass's state (a model or transformers version whose cache works
    otherwise), the probe runs every token of every prompt, as before."""
    import transformers

    from ltrsched.predictors.probe import ProbeBackbone

    class Broken(transformers.DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):  # (forgets the prefix)
            raise RuntimeError("no cache here")

    monkeypatch.setattr(transformers, "DynamicCache", Broken)
    backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm)), 1)
    assert backbone._prefix == [] and backbone._prefix_cache is None
    ids = backbone._ids("write a story")
    assert backbone.features(["write a story"])[0].equal(backbone._states(ids)[-1])


def test_the_layers_after_the_probed_one_are_freed(tiny_lm):
    """Layers after the probed one never run: they are dropped from the loaded model (half its weights for the
    default layer), and the features stay the full model's (the test above compares them with transformers')."""
    from ltrsched.predictors.probe import ProbeBackbone

    backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_layer=1), 1)
    assert len(backbone.lm.layers) == 1 and backbone.lm.layers[0] is backbone.layer


@pytest.mark.parametrize("cpuinfo, native", [
    ("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n", True),
    ("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n", True),
    ("flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n", False),  # (Cascade Lake: bfloat16 emulated)
    ("flags\t\t: fpu avx2 fma\n", False),
    ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", True),  # (Arm)
    ("", False),
])
def test_native_bf16_reads_the_cpus_flags(cpuinfo, native):
    from ltrsched.predictors.probe import native_bf16

    assert native_bf16(cpuinfo) is native


def test_a_bf16_probe_keeps_its_precision_in_the_checkpoint_and_scores_as_trained(tiny_lm, tmp_path):
    """--probe-precision bf16: the model's weights in bfloat16 (its rotary frequencies float32), features about 1%
    off the float32 ones, each prompt's the same alone or among others; the checkpoint records the precision, so a
    loaded predictor computes the features its head was trained on (not float32's) and scores the same."""
    import torch

    from ltrsched.predictors.probe import ProbeBackbone

    prompts, lengths = synthetic(60, 0)
    ev_p, _ = synthetic(20, 1)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), epochs=2, probe_precision="bf16"))
    pred.fit(prompts, lengths)
    backbone = pred.backbone
    assert backbone.lm.embed_tokens.weight.dtype == torch.bfloat16
    assert all(b.dtype == torch.float32 for name, b in backbone.lm.named_buffers() if "inv_freq" in name)
    scores = pred.scores(ev_p)
    ck = pred.save(tmp_path / "ck")
    assert json.loads((ck / "predictor.json").read_text())["probe_precision"] == "bf16"
    again = Predictor.load(ck)
    assert again.config.probe_precision == "bf16" and np.array_equal(again.scores(ev_p), scores)
    feats = again.backbone.features(ev_p)
    assert torch.equal(again.backbone.features([ev_p[3]])[0], feats[3])  # (no batch-mates in a prompt's features)
    f32 = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm)), 1).features(ev_p)
    off = (feats - f32).norm(dim=1) / f32.norm(dim=1)
    assert 0 < float(off.max()) < 0.05


def test_a_bf16_probe_without_onednns_packed_products_keeps_plain_linear_layers(tiny_lm, monkeypatch):
    """The weights laid out for oneDNN (a private op of torch's compiler) are an optimisation only: a torch without
    the op (or whose op computes otherwise) keeps bfloat16 linear layers and the same features, up to rounding."""
    import torch

    from ltrsched.predictors import probe

    fast = probe.ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_precision="bf16"), 1)
    packs = probe._packed_linear(torch.nn.Linear(8, 8).to(torch.bfloat16)) is not None  # (torch with oneDNN: x86)
    assert packs == (not any(isinstance(m, torch.nn.Linear) for m in fast.lm.layers.modules()))
    monkeypatch.setattr(torch.ops, "mkldnn", object())  # (no _reorder_linear_weight, no _linear_pointwise)
    plain = probe.ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_precision="bf16"), 1)
    linears = [m for m in plain.lm.layers.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    prompts = ["please explain the story", "yes", "write a long essay of the word"]
    a, b = fast.features(prompts), plain.features(prompts)
    assert float(((a - b).norm(dim=1) / b.norm(dim=1)).max()) < 0.03


def test_a_bf16_probe_checkpoint_of_another_model_is_still_refused(tmp_path):
    """bfloat16's reference state may differ by up to 5% across CPUs; another model's differs by far more."""
    import shutil

    model = make_lm(tmp_path / "lm")
    prompts, lengths = synthetic(30, 0)
    pred = Predictor(PredictorConfig(backbone="probe", hf_path=str(model), epochs=1, probe_precision="bf16"))
    pred.fit(prompts, lengths)
    ck = pred.save(tmp_path / "ck")
    Predictor.load(ck)  # the same model: accepted
    make_lm(tmp_path / "other", seed=1)
    shutil.copy(tmp_path / "other" / "model.safetensors", model / "model.safetensors")
    with pytest.raises(UserError, match="is not the one this probe was trained on"):
        Predictor.load(ck)


def test_cli_probe_precision(tiny_lm, tmp_path, capsys, monkeypatch):
    """train --probe-precision bf16 records it; on a CPU without native bfloat16 products it says so and trains in
    float32 (emulated bfloat16 is slower); predict of a bf16 checkpoint there notes the slower path; the option needs
    the probe backbone, and a checkpoint with an unknown precision is one line."""
    from ltrsched.predictors import probe

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    prompts, lengths = synthetic(40, 0)
    ev_p, ev_l = synthetic(20, 1)
    for name, ps, ls in (("train", prompts, lengths), ("eval", ev_p, ev_l)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": int(n)}) + "\n"
                                                        for p, n in zip(ps, ls)))
    base = ("train", "--data", str(tmp_path / "train.jsonl"), "--eval-data", str(tmp_path / "eval.jsonl"),
            "--epochs", "1")
    probe_args = ("--backbone", "probe", "--hf-model", str(tiny_lm), "--probe-precision", "bf16")
    monkeypatch.setattr(probe, "native_bf16", lambda cpuinfo=None: True)
    code, out, err = _cli(capsys, *base, *probe_args, "--out", str(tmp_path / "bf"))
    assert code == 0 and _but_few_prompts_warning(err) == "", err[-2000:]
    assert json.loads((tmp_path / "bf" / "predictor.json").read_text())["probe_precision"] == "bf16"
    monkeypatch.setattr(probe, "native_bf16", lambda cpuinfo=None: False)
    code, out, err = _cli(capsys, *base, *probe_args, "--out", str(tmp_path / "f32"))
    assert code == 0 and "no native bfloat16 products" in err and "training in float32" in err
    assert json.loads((tmp_path / "f32" / "predictor.json").read_text())["probe_precision"] == "float32"
    code, out, err = _cli(capsys, "predict", "-m", str(tmp_path / "bf"), "-w", str(tmp_path / "eval.jsonl"),
                          "-o", str(tmp_path / "s.parquet"))
    assert code == 0 and "computes its probe features in bfloat16 (as trained)" in err
    code, out, err = _cli(capsys, *base, "--probe-precision", "bf16", "--out", str(tmp_path / "bad"))
    assert code == 2 and err.strip() == "error: --probe-precision needs --backbone probe"
    spec = json.loads((tmp_path / "bf" / "predictor.json").read_text())
    (tmp_path / "bf" / "predictor.json").write_text(json.dumps({**spec, "probe_precision": "int8"}))
    code, out, err = _cli(capsys, "predict", "-m", str(tmp_path / "bf"), "-w", str(tmp_path / "eval.jsonl"),
                          "-o", str(tmp_path / "s2.parquet"))
    assert code == 2 and "unknown probe_precision 'int8'; use float32 or bf16" in err and len(err.splitlines()) == 1


def test_a_checkpoint_without_a_probe_precision_is_float32_and_other_backbones_refuse_one(tmp_path):
    from dataclasses import asdict

    spec = asdict(PredictorConfig(backbone="probe", hf_path="smollm2"))
    del spec["probe_precision"]  # (a checkpoint written before the option)
    (tmp_path / "predictor.json").write_text(json.dumps(spec))
    assert PredictorConfig.load(tmp_path).probe_precision == "float32"
    with pytest.raises(UserError, match="probe_precision bf16 is set, but the backbone is 'ngram'"):
        PredictorConfig(probe_precision="bf16")


def test_the_hf_backbone_loads_a_causal_lm_without_transformers_report_on_stderr(tiny_lm, capfd):
    """--backbone hf on a causal LM's directory: its lm_head is unused and the classifier's score head new, which
    transformers reported on stderr (a table and notes) with a progress bar; the quiet loader silences both, and
    its logging settings are back afterwards."""
    from transformers.utils import logging as hf_logging

    from ltrsched.predictors.backbones import HFBackbone

    before = hf_logging.get_verbosity()
    capfd.readouterr()
    backbone = HFBackbone(PredictorConfig(backbone="hf", hf_path=str(tiny_lm)), 1)
    err = capfd.readouterr().err
    assert err == "", err
    assert hf_logging.get_verbosity() == before
    assert backbone.tokenizer is not None and backbone.model.config.num_labels == 1


def test_the_probe_study_reads_the_probed_layers_states(tiny_lm):
    """benchmarks/probe_study.py's features (per layer, last token and mean): its last-token state after the probed
    layer is the backbone's feature (it read an attribute the backbone no longer has: AttributeError)."""
    from bench_modules import load_benchmark
    from ltrsched.predictors.probe import ProbeBackbone

    study = load_benchmark("probe_study")
    backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_layer=2), 1)
    prompts = ["please explain the answer", "list a short word"]
    feats = study.features(backbone, prompts)
    assert sorted(feats) == ["last2", "mean2"] and feats["last2"].shape == (2, 32)
    np.testing.assert_allclose(feats["last2"], backbone.features(prompts).numpy(), rtol=1e-4, atol=1e-5)
    every = study.all_layers(backbone, prompts)  # (--only layers: each layer's states, pooled)
    assert sorted(every) == sorted(study.POOLS) and every["last"].shape == (2, 2, 32)
    first = ProbeBackbone(PredictorConfig(backbone="probe", hf_path=str(tiny_lm), probe_layer=1), 1)
    for k, probed in ((0, first), (1, backbone)):
        np.testing.assert_allclose(every["last"][:, k], probed.features(prompts).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(every["m4"], every["last"]) and np.isfinite(every["all"]).all()
    assert study.head_config("last@15+m4@24", 30) == (("last", 15), ("m4", 24))
    for bad in ("last15", "x@3", "last@31", "last@0", "last@15+m4@"):
        with pytest.raises(ValueError, match="POOL@LAYER"):
            study.head_config(bad, 30)
