"""The served model's own hidden state as a ranker's features (``--backbone probe``).

A frozen causal language model reads each prompt through its chat template (as a server would hand it
to the model), and the hidden state after decoder layer ``probe_layer`` at the last prompt token (the
position whose next token starts the response) is the prompt's feature vector. Only a linear head on the
standardised features is trained; the checkpoint holds the head, the standardisation and the layer, and
names the model by ``hf_path``. Only the first ``probe_layer`` layers run: the probe of the middle layer
costs half a prefill of the model.

Why: a model's own states know more about how it will answer than any other model's text features. On
SmolLM2-135M-Instruct's greedy lengths (``data/smollm2-labels.parquet``, 400 train / 400 held-out
prompts) the n-gram ranker reaches tau 0.159 and the probe of the middle layer 0.30 (BENCHMARKS.md).

``probe_precision`` (``--probe-precision``, kept in the checkpoint so that ``predict`` computes the features its head
was trained on): "float32" (the default), or "bf16": the probed layers in bfloat16 with their weights laid out once
for oneDNN's matrix products, about 2.2x faster on a CPU with native bfloat16 products (AVX512-BF16 or AMX), features
about 1% off the float32 ones (so a head trained on one precision scores the other's features slightly off).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable

import numpy as np

from ltrsched.errors import ArgumentValueError, MissingDependencyError, UserError
from ltrsched.predictors.config import PROBE_PRECISIONS as PRECISIONS, PredictorConfig
from ltrsched.predictors.quiet import no_length_warning, quiet_load


#: Files of a model directory's tokenizer (one is needed; a GGUF file holds its own).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

#: A prompt the probe reads when its model loads: its chat template must render it, the model's states of it
#: must be causal, and its features are the model's identity in a checkpoint (``reference``).
CANARY = "How long will the answer to this question be? Please explain in a few words."


class _StopAfterLayer(Exception):
    """Raised by the hook on the probed layer: the layers after it are not run."""


def _layer_count(hf_config, hf_path: str | None) -> int:
    """The model's number of decoder layers, from its config's ``num_hidden_layers`` (transformers' name for it;
    ``n_layer`` and the like are aliases of it): :class:`UserError` naming the config if it gives none (a 0-layer
    model was reported instead, "--probe-layer must be in [1, 0]", for a layer nobody asked for)."""
    count = getattr(hf_config, "num_hidden_layers", None)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        got = "has no num_hidden_layers" if count is None else f"gives num_hidden_layers {count!r}"
        raise UserError(f"the config of {hf_path} ({type(hf_config).__name__}) {got}: --backbone probe needs the "
                        "number of decoder layers to find the layer it reads (a positive integer)")
    return count


def _decoder_layers(model, count: int):
    """The model's list of ``count`` decoder layers (``model.layers``, ``h``, ``decoder.layers``...)."""
    import torch

    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise UserError(f"cannot find the {count} decoder layers of this {type(model).__name__} for --backbone probe")


#: Relative difference of the canary's state through the shared prefix's cache from the full pass's below which the
#: cache is used, per precision: float32 noise is ~1e-7 (measured 1.3e-6 at most); in bfloat16 the products of 24
#: prefix rows and of the whole prompt take other kernels and round differently (SmolLM2's layer 15: up to 1.7%,
#: as much as bfloat16 is off float32), the same computation all the same.
PREFIX_TOLERANCE = {"float32": 1e-4, "bf16": 5e-2}

#: The relative difference of a checkpoint's reference state (:data:`CANARY`) from the loaded model's above which the
#: model is another one, per precision: float32 noise across CPUs is ~1e-7; bfloat16's kernels (AMX, AVX512-BF16,
#: emulated) round differently, by up to ~2% (see :data:`PREFIX_TOLERANCE`); another model's state differs by tens
#: of percent.
REFERENCE_TOLERANCE = {"float32": 1e-3, "bf16": 5e-2}


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86: the ``avx512_bf16`` or ``amx_bf16`` flag; Arm: ``bf16``),
    from ``cpuinfo`` (the text of /proc/cpuinfo; None: read it; unreadable: False). Without it torch emulates
    bfloat16 products, slower than float32 ones (issue 13)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def _packed_linear(linear):
    """``linear`` (bfloat16) as a module whose weight oneDNN has laid out once for its matrix products (torch's own
    compiler does this for frozen CPU models); ``F.linear`` lays the weight out again at every call, a third of a
    bfloat16 product's time at a prompt's ~75 rows. None if this torch has no such op or its result differs from
    ``F.linear``'s (the caller keeps ``linear``)."""
    import torch

    try:
        op, reorder = torch.ops.mkldnn._linear_pointwise, torch.ops.mkldnn._reorder_linear_weight
        packed = reorder(linear.weight.detach(), 64)  # (a hint of the rows; any number of rows works)
        bias = None if linear.bias is None else linear.bias.detach()
        x = torch.randn(37, linear.in_features, generator=torch.Generator().manual_seed(0)).to(linear.weight.dtype)
        got = op(x, packed, bias, "none", [], "").float()
        want = torch.nn.functional.linear(x, linear.weight, bias).float()
        if got.shape != want.shape or not bool(((got - want).norm() <= 1e-2 * want.norm()).item()):
            return None
    except Exception:  # (RuntimeError, AttributeError: a torch built without oneDNN, or another version's ops)
        return None

    class PackedLinear(torch.nn.Module):
        """``linear`` with its weight laid out once for oneDNN (``packed``; rows in any number)."""

        def __init__(self):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.packed, self.bias = packed, bias

        def forward(self, x):
            y = op(x.reshape(-1, x.shape[-1]), self.packed, self.bias, "none", [], "")
            return y.reshape(*x.shape[:-1], y.shape[-1])

    return PackedLinear()


def _to_bf16(lm) -> int:
    """Cast the model's parameters to bfloat16 (its buffers, such as the rotary embedding's frequencies, stay
    float32) and lay out its linear layers' weights for oneDNN (:func:`_packed_linear`); returns how many were."""
    import torch

    for param in lm.parameters():
        param.data = param.data.to(torch.bfloat16)
    packed = 0
    for module in list(lm.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                fast = _packed_linear(child)
                if fast is not None:
                    setattr(module, name, fast)
                    packed += 1
    return packed


#: A feature whose standard deviation over the training prompts is below this fraction of its scale (its RMS,
#: or the median RMS of all features if that is larger: a few huge "massive activation" features do not set it)
#: counts as constant: it is divided by that floor instead,
#: not by its own tiny spread. (float32 noise of a hidden state is ~1e-7 of it; an absolute +1e-6 made a feature
#: constant in training, moved by 0.01 at prediction, a z-score of 10,000 that outweighed every other feature.)
STD_FLOOR = 1e-3


def standardisation(feats):
    """Per-feature mean and divisor [hidden] of training features [prompts, hidden]: the standard deviation,
    at least :data:`STD_FLOOR` times the feature's scale, so near-constant features stay near 0 after it."""
    import torch

    mean, std = feats.mean(0), feats.std(0)
    rms = feats.pow(2).mean(0).sqrt()
    floor = STD_FLOOR * torch.maximum(rms, rms.median())
    return mean, torch.maximum(std, floor.clamp_min(torch.finfo(feats.dtype).tiny))


def _head(hidden: int, outputs: int):
    import torch

    class ProbeHead(torch.nn.Module):
        """Standardise the features (statistics of the training prompts), then a linear layer. ``reference``:
        the features of :data:`CANARY` when it was trained (the model's identity; NaN: not recorded)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(hidden))
            self.register_buffer("std", torch.ones(hidden))
            self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
            self.register_buffer("reference", torch.full((hidden,), float("nan")))
            self.linear = torch.nn.Linear(hidden, outputs)
            self._register_load_state_dict_pre_hook(self._unrecorded_reference)

        @staticmethod
        def _unrecorded_reference(state, prefix, *args):
            """Checkpoints saved before the reference was recorded load without one (NaN: not checked)."""
            state.setdefault(prefix + "reference", torch.full((hidden,), float("nan")))

        def forward(self, features):
            # each row on its own (a product and a sum over its features), not a matrix product, whose rows are
            # summed in blocks: the same features scored other last bits by their place in the batch
            z = (features - self.mean) / self.std
            w, b = self.linear.weight, self.linear.bias
            return torch.stack([(z * w[k]).sum(-1) for k in range(w.shape[0])], dim=1) + b

    return ProbeHead()


class ProbeBackbone:
    """Features: a frozen causal LM's hidden state after ``config.probe_layer`` layers (default: half of
    them) at the last token of the chat-templated prompt (truncated to ``max_prompt_tokens`` tokens)."""

    def __init__(self, config: PredictorConfig, outputs: int):
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "predict") from None
        from ltrsched.predictors.backbones import check_layer_count, hf_load_error, resolve_hf_model
        from ltrsched.packaged_models import missing_gguf_packages

        path, gguf = resolve_hf_model(config.hf_path)
        if gguf is not None and missing_gguf_packages():
            raise UserError(f"loading a GGUF model needs the package {missing_gguf_packages()[0]}: "
                            "pip install gguf accelerate")
        check_layer_count(path, gguf)
        extra = {"gguf_file": gguf} if gguf else {}
        if not gguf and not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise UserError(f"--hf-model {config.hf_path!r} has no tokenizer (no {' or '.join(TOKENIZER_FILES)}): "
                            "the probe reads prompts as the model is served them, through its own tokenizer")
        try:
            with quiet_load():
                self.lm = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32, **extra)
                self.tokenizer = no_length_warning(AutoTokenizer.from_pretrained(path, local_files_only=True, **extra))
        except Exception as exc:  # transformers and torch raise anything for a damaged model directory
            raise hf_load_error(path / (gguf or ""), exc) from None
        self.lm.eval()
        self.lm.requires_grad_(False)
        count = _layer_count(self.lm.config, config.hf_path)
        layer = config.probe_layer if config.probe_layer is not None else max(1, count // 2)
        if not 1 <= layer <= count:
            raise ArgumentValueError(f"--probe-layer must be in [1, {count}] for this {count}-layer model, got {layer}")
        config.probe_layer = layer  # (recorded in the checkpoint: the default depends on the model)
        if config.probe_precision not in PRECISIONS:
            raise UserError(f"unknown probe precision {config.probe_precision!r}; use {' or '.join(PRECISIONS)}")
        self.config = config
        layers = _decoder_layers(self.lm, count)
        self.layer = layers[layer - 1]
        hidden = int(self.lm.config.hidden_size)
        self.model = _head(hidden, outputs)
        self._memo: dict | None = None  # prompt text -> its hidden state, while training (:meth:`fitting`)
        self._cut_memo: set | None = None  # the prompts of ``_memo`` longer than it reads (:attr:`prompt_cut`)
        #: Of the prompts :meth:`features` gave last, how many are longer than it reads (:attr:`prompt_cut`), counted
        #: from the token ids it ran (``count_cut`` put each prompt through the template and tokenizer again)
        self.last_cut: int | None = None
        #: Called with a count of prompts whose features are ready (computed, or remembered while training) as
        #: :meth:`features` goes: a pass of the model per prompt (a progress display's ``update``); None: nothing
        self.on_featurised: Callable[[int], None] | None = None
        # [tokens] the longest input the model takes (learned positions end there)
        self.context = int(getattr(self.lm.config, "max_position_embeddings", 0) or 1 << 30)
        ids = self._ids(CANARY)  # a chat template that cannot render a user message fails here, before any training
        states = self._states(ids)
        self._check_causal(ids, states)  # (in float32: bfloat16's rounding would pass for a non-causal model's)
        self._drop_layers_after(layers, layer, ids, states[-1])
        if config.probe_precision == "bf16":
            _to_bf16(self.lm)
            states = self._states(ids)
        self.reference = states[-1]  # [hidden] this model's features of CANARY: its identity, kept in the checkpoint
        self._prefix: list[int] = []  # token ids every templated prompt starts with (:meth:`_shared_prefix`)
        self._prefix_cache = None  # the probed layers' keys and values of ``_prefix`` (transformers' DynamicCache)
        self._shared_prefix(ids)

    def _drop_layers_after(self, layers, layer: int, ids: list[int], state) -> None:
        """Free the decoder layers after the probed one (never run: half the model's weights for the default
        layer). Put back if the model then computes another ``state`` of ``ids`` (a model class that needs them)."""
        dropped = list(layers[layer:])
        if not dropped:
            return
        del layers[layer:]
        try:
            same = bool((self._states(ids)[-1] == state).all())
        except Exception:  # (a model class whose forward pass needs every layer)
            same = False
        if not same:
            layers.extend(dropped)

    @property
    def prompt_cut(self) -> int:
        """[tokens] The most of a templated prompt the model reads: ``max_prompt_tokens``, or fewer where the model
        has fewer positions."""
        return min(self.config.max_prompt_tokens, self.context)

    def count_cut(self, prompts: list[str]) -> int:
        """How many of ``prompts`` have more tokens through the chat template than the model reads
        (:attr:`prompt_cut`)."""
        return sum(len(self._templated_ids(p)) > self.prompt_cut for p in prompts)

    def cut_words(self) -> str:
        """What the model reads of a prompt longer than :attr:`prompt_cut`, in words (:meth:`_ids`)."""
        tail = min(8, self.prompt_cut)
        return (f"their first {self.prompt_cut - tail} and last {tail} tokens (the end of the chat template)"
                if self.prompt_cut > tail else f"their last {tail} tokens")

    def _ids(self, prompt: str) -> list[int]:
        """The prompt's token ids as the model is served them (:meth:`_templated_ids`), cut to :attr:`prompt_cut`:
        its head and its last 8 (the generation prompt, whose last token's state is read)."""
        return self._read_part(self._templated_ids(prompt))

    def _read_part(self, ids: list[int]) -> list[int]:
        """What the model reads of a templated prompt's token ``ids`` (:meth:`_ids`)."""
        n = self.prompt_cut
        if len(ids) > n:  # keep the end: the generation prompt, whose last token's state is read
            tail = min(8, n)
            ids = ids[: n - tail] + ids[-tail:]
        return ids

    def _templated_ids(self, prompt: str) -> list[int]:
        """The prompt's token ids as the model is served them, whole: through its chat template if it has one."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            try:
                ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                              tokenize=True)
            except Exception as exc:  # jinja2's TemplateError: the template's raise_exception(), a syntax error...
                first = (str(exc).strip().splitlines() or ["no details"])[0]
                raise UserError(f"the chat template of {self.config.hf_path} cannot render a user message: "
                                f"{type(exc).__name__}: {first}") from None
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        else:
            ids = tok(prompt, add_special_tokens=True)["input_ids"]
        ids = [int(i) for i in ids] or [tok.eos_token_id or 0]
        from ltrsched.predictors.backbones import check_token_ids

        check_token_ids([ids], self.lm.get_input_embeddings().num_embeddings, self.config.hf_path)
        return ids

    @contextlib.contextmanager
    def fitting(self):
        """While training, a prompt's state is computed once (training scores its held-out prompts every epoch);
        after it nothing is kept: memory stays bounded, and a later call (a timed one) runs the model."""
        self._memo, self._cut_memo = {}, set()
        try:
            yield
        finally:
            self._memo = self._cut_memo = None

    def features(self, prompts: list[str]):
        """Hidden states [len(prompts), hidden] (float32), one forward pass per distinct prompt (no padding); a
        prompt seen before while training (:meth:`fitting`) is not run again."""
        import torch

        memo = self._memo if self._memo is not None else {}
        cut = self._cut_memo if self._cut_memo is not None else set()
        todo = list(dict.fromkeys(p for p in prompts if p not in memo))
        if self.on_featurised is not None and len(prompts) > len(todo):
            self.on_featurised(len(prompts) - len(todo))  # (remembered, or a repeat of one computed now)
        if todo:
            for prompt, row in zip(todo, self._run(todo, cut)):
                memo[prompt] = row
        self.last_cut = sum(p in cut for p in prompts) if cut else 0
        if not prompts:
            return torch.zeros((0, self.model.mean.shape[0]), dtype=torch.float32)
        return torch.stack([memo[p] for p in prompts])

    def forget_features(self) -> None:
        """Drop the memoized hidden states (a timing of the predictor must compute every prompt's; only training
        keeps any)."""
        if self._memo is not None:
            self._memo.clear()

    def _run(self, prompts: list[str], cut: set):
        """The hidden states of ``prompts``, computed; those longer than it reads are added to ``cut``."""
        import torch

        out = torch.zeros((len(prompts), self.model.mean.shape[0]), dtype=torch.float32)
        limit = self.prompt_cut
        for i, prompt in enumerate(prompts):
            ids = self._templated_ids(prompt)
            if len(ids) > limit:
                cut.add(prompt)
            out[i] = self._last_state(self._read_part(ids))
            if self.on_featurised is not None:
                self.on_featurised(1)
        return out

    def _last_state(self, ids: list[int]):
        """The hidden state [hidden] after the probed layer at the last of ``ids``. A sequence that starts with the
        shared template prefix runs only the tokens after it, on the prefix's cached keys and values: the same
        causal computation (float32 noise apart); SmolLM2's 24 such tokens are a quarter of its eval prompts' tokens."""
        n = len(self._prefix)
        if self._prefix_cache is None or len(ids) <= n or ids[:n] != self._prefix:
            return self._states(ids)[-1]
        return self._states(ids[n:], cache=copy.deepcopy(self._prefix_cache), start=n)[-1]

    def _shared_prefix(self, ids: list[int]) -> None:
        """Find the token ids every chat-templated prompt starts with (a system prompt, the user turn's header:
        SmolLM2's template puts 24 tokens before each prompt) and keep the probed layers' keys and values of them.
        Kept only if the canary's state (``ids``) read through the cache matches the full pass's: a model or
        transformers version whose cache does not work this way probes every token, as before."""
        n = len(ids) - 1
        for other in ("yes", "0"):  # (messages that share no first token with the canary's)
            other_ids = self._ids(other)
            n = next((i for i, (a, b) in enumerate(zip(ids[:n], other_ids)) if a != b), min(n, len(other_ids) - 1))
        if n == 0:
            return
        try:
            from transformers import DynamicCache

            cache = DynamicCache()
            self._states(ids[:n], cache=cache)
            check = self._states(ids[n:], cache=copy.deepcopy(cache), start=n)[-1]
        except Exception:  # (a model class or transformers version that takes no cache this way)
            return
        if float((check - self.reference).norm() / (self.reference.norm() + 1e-12)) < PREFIX_TOLERANCE[
                self.config.probe_precision]:
            self._prefix, self._prefix_cache = ids[:n], cache

    def _states(self, ids: list[int], cache=None, start: int = 0):
        """The hidden states [len(ids), hidden] after the probed layer at every position of one token sequence
        (the layers after it are not run). ``cache``: the keys and values of the ``start`` tokens before ``ids``
        (extended in place), None: ``ids`` is the whole sequence."""
        import torch

        captured = {}

        def hook(module, args, output):
            captured["h"] = output[0] if isinstance(output, (tuple, list)) else output
            raise _StopAfterLayer

        handle = self.layer.register_forward_hook(hook)
        extra = {} if cache is None else {
            "past_key_values": cache, "use_cache": True,
            "position_ids": torch.arange(start, start + len(ids), dtype=torch.long)[None]}
        try:
            with torch.inference_mode():
                try:
                    self.lm(input_ids=torch.tensor([ids], dtype=torch.long), **{"use_cache": False, **extra})
                except _StopAfterLayer:
                    pass
        finally:
            handle.remove()
        if "h" not in captured:  # (the list found by _decoder_layers is not what the forward pass runs)
            raise UserError(f"layer {self.config.probe_layer} of {type(self.lm).__name__} ({self.config.hf_path}) "
                            "did not run in its forward pass: --backbone probe cannot read it from this model")
        h = captured.pop("h")
        return h.reshape(-1, h.shape[-1]).float()

    def _check_causal(self, ids: list[int], states) -> None:
        """Raise :class:`UserError` unless the model is causal: a token's state (``states`` of ``ids``) must not
        depend on the tokens after it (an encoder such as BERT reads the whole prompt both ways; its last token
        is no next-token position)."""
        if len(ids) < 2:
            return
        full, short = states[:-1], self._states(ids[:-1])
        change = float((full - short).norm() / (short.norm() + 1e-12))
        if change > 1e-5:  # (float32 noise of a causal model: ~1e-7; a random tiny BERT: ~1e-3)
            raise UserError(f"--backbone probe needs a causal language model, and {self.config.hf_path} "
                            f"({type(self.lm).__name__}) is not one: its states of a prompt change when a token is "
                            f"appended (relative change {change:.1e}); give a decoder-only model such as smollm2")

    def prepare(self, prompts: list[str]):
        feats = self.features(prompts)
        head = self.model
        if self._memo is not None and not bool(head.fitted) and len(prompts) > 1:  # training's prompts set the scale
            import torch

            if bool((feats == feats[0]).all()):  # (nothing to learn: a ranker that scores every prompt alike)
                raise ArgumentValueError(f"all {len(prompts)} training prompts give the probe the same state (the same "
                                         "tokens through the chat template, cut to --max-prompt-tokens "
                                         f"{self.config.max_prompt_tokens}): nothing to rank; raise "
                                         "--max-prompt-tokens")
            with torch.no_grad():
                mean, std = standardisation(feats)
                head.mean.copy_(mean)
                head.std.copy_(std)
                head.fitted.fill_(True)
                head.reference.copy_(self.reference)
        return feats

    def check_loaded(self, directory) -> None:
        """Raise :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) if the model at ``hf_path`` is not the
        one the checkpoint in ``directory`` was trained on (other weights, tokenizer or chat template: its features of
        :data:`CANARY` differ), which would score with a head fitted to another model's features."""
        saved = self.model.reference
        if bool(saved.isnan().any()):  # (a checkpoint saved before the reference was recorded)
            return
        change = float((self.reference - saved).norm() / (saved.norm() + 1e-12))
        if change > REFERENCE_TOLERANCE[self.config.probe_precision]:  # (the same model on another CPU: noise)
            raise ArgumentValueError(f"{directory}: the model {self.config.hf_path} is not the one this probe was "
                                     f"trained on (its layer-{self.config.probe_layer} state of a reference prompt "
                                     f"differs by {change:.1%}: other weights, tokenizer or chat template); train the "
                                     "probe again on it")

    def forward(self, data, rows):
        import torch

        out = self.model(data[torch.as_tensor(np.asarray(rows), dtype=torch.long)])
        return out[:, 0] if out.shape[1] == 1 else out
